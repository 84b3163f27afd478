# A base image from the root filesystem that `images/build.sh base` makes with mmdebstrap: Debian
# bookworm minbase with python3 (3.11) and python3-venv. The context holds only rootfs.tar.
FROM scratch
ADD rootfs.tar /
CMD ["python3"]

cat > ~/hello/Dockerfile <<'DOCKERFILE'
FROM scratch
COPY rootfs/ /
CMD ["/bin/busybox", "echo", "Hello from an image built from scratch"]
DOCKERFILE

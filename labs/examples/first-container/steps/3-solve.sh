docker rm -f first

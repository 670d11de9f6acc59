cd ~/hello && docker build -q -t hello:1 .

if ! docker image inspect hello:1 >/dev/null 2>&1; then
    echo "There is no image hello:1 yet. Run: cd ~/hello && docker build -t hello:1 ."
    exit 1
fi
echo "The image hello:1 is built."

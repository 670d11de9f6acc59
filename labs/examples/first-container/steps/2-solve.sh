docker stop -t 1 first

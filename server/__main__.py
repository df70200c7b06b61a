"""``python -m server``: run the server with settings from the environment."""

from server.app import main

if __name__ == "__main__":
    main()

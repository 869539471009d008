"""`python -m steady` is the same as the `steady` command."""

from steady.cli import main

if __name__ == "__main__":
    main()

"""`python -m bot`: the same command line as `agent-dispatch`."""

from bot.cli.main import run

if __name__ == "__main__":
    run()

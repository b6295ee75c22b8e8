#!/usr/bin/env python
"""Django's command-line utility for administrative tasks.

In development it reads the git-ignored `.env` that `make run` writes (DEBUG=1 and generated
secrets); variables already in the environment win over it.
"""

import os
import sys
from pathlib import Path


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "llmapi.settings")
    from django.core.management import execute_from_command_line

    from llmapi.env import load_env_file

    load_env_file(Path(__file__).resolve().parent / ".env")
    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()

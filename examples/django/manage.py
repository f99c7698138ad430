#!/usr/bin/env python3
"""Django's command-line utility for the Shoal chat example."""
import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatsite.settings")
    here = os.path.dirname(os.path.abspath(__file__))
    # The shoal package of this repository (clients/python).
    sys.path.insert(0, os.path.join(here, "..", "..", "clients", "python"))
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)

"""`python -m producer.cli`."""

from producer.cli import main

main()

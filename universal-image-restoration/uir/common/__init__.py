"""The bottom floor: errors meant for the user, value checks, declared options blocks, and
how entry points report errors. Nothing here imports the rest of `uir`."""

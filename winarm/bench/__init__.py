"""The boot benchmark behind 'winarm bench': variants, runs and their statistics."""

"""DCASE 2023 Task 7 Foley sound synthesis: baseline components and helpers for the dcase_foley recipe."""

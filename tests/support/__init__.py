"""Helpers the test suites share: real servers started on free ports, tables, waiting."""

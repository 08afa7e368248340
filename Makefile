.PHONY: setup demo test check bench

setup:
	bash scripts/setup.sh

demo:
	bash scripts/demo.sh

test:
	bash scripts/test.sh

check:
	bash scripts/check.sh

bench: setup
	.venv/bin/python bench/replication.py

# The two commands of README: `make bench` and `make test`. Each sets up .venv first if needed.
VENV ?= .venv
STAMP := $(VENV)/.installed

.PHONY: bench test

bench: $(STAMP)
	$(VENV)/bin/pytest --benchmark-only $(ARGS)

test: $(STAMP)
	$(VENV)/bin/pytest $(ARGS)

$(STAMP): pyproject.toml scripts/install
	scripts/install $(VENV)
	touch $(STAMP)

# The two commands a new machine needs: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test install lint bench clean system-deps serve
# Debian packages the tests drive for real: Kannel (bearerbox, smsbox) and its fake SMSC.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

$(STAMP): pyproject.toml
	@test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev]"
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/haqq demo

serve: $(STAMP)
	$(VENV)/bin/haqq serve

lint: $(STAMP)
	$(VENV)/bin/ruff check haqq bench tests
	$(VENV)/bin/mypy

system-deps:
	@command -v bearerbox >/dev/null 2>&1 && dpkg -s kannel-extras >/dev/null 2>&1 || \
	  (echo "installing Debian's kannel and kannel-extras for the SMS gateway tests" && \
	   DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q kannel kannel-extras >/dev/null)
	@test -x /usr/bin/chromium || \
	  (echo "installing Debian's chromium for the browser tests" && \
	   DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q chromium >/dev/null)

test: lint system-deps
	$(PY) -m pytest -q

bench: $(STAMP)
	$(VENV)/bin/haqq bench pipeline

clean:
	rm -rf $(VENV) .bench-cache haqq.db* country.db*

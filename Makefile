# tunesmith — the README's two commands: `make demo` and `make test`. Each sets itself up.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
MODEL  := models/erk.pt
DEMO   := out/demo
SOUNDFONT := /usr/share/sounds/sf2/FluidR3_GM.sf2
GENERATE  := $(BIN)/tunesmith generate --model $(MODEL) --bars 16 --num 1

SWAGGER   := src/tunesmith/studio/static/vendor/swagger-ui

.PHONY: install audio-deps abc-deps browser-deps web-assets demo serve test bench model clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	touch $(STAMP)

install: $(STAMP) web-assets

# The studio's API page (/docs) uses Swagger UI from npm's swagger-ui-dist, copied in here and
# git-ignored. Without npm the page falls back to a plain list of the endpoints; never fatal.
web-assets:
	@if [ -f $(SWAGGER)/swagger-ui-bundle.js ]; then :; \
	elif command -v npm >/dev/null 2>&1; then \
	  (npm install --silent --no-save --no-audit --no-fund --ignore-scripts --prefix .web swagger-ui-dist@5 && \
	   mkdir -p $(SWAGGER) && cp .web/node_modules/swagger-ui-dist/swagger-ui-bundle.js \
	   .web/node_modules/swagger-ui-dist/swagger-ui.css $(SWAGGER)/) || echo "note: could not fetch swagger-ui-dist; /docs will be a plain page"; \
	else echo "note: without npm the studio's /docs is a plain page (install npm for Swagger UI)"; fi

# The studio's browser test drives Debian's headless chromium with its chromedriver (never a
# downloaded browser). Installed only when missing and only as root (CI); otherwise the test skips.
browser-deps:
	@if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	    chromium chromium-driver >/dev/null) || echo "note: could not install chromium; the browser test will skip"; \
	else echo "note: for the studio's browser test run: sudo apt-get install chromium chromium-driver"; fi

# WAV output needs the fluidsynth program and a GM soundfont (Debian packages). Installed only
# when missing and only as root (CI); otherwise a hint. Never fatal: every other output still works.
audio-deps:
	@if command -v fluidsynth >/dev/null 2>&1 && [ -f $(SOUNDFONT) ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	    fluidsynth fluid-soundfont-gm >/dev/null) || echo "note: could not install fluidsynth; WAV output will be skipped"; \
	else echo "note: for WAV output run: sudo apt-get install fluidsynth fluid-soundfont-gm"; fi

# The ABC tests check that Debian's abc2midi (package abcmidi) reads what we write. Installed only
# when missing and only as root (CI); otherwise those tests skip with the install hint.
abc-deps:
	@if command -v abc2midi >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	    abcmidi >/dev/null) || echo "note: could not install abcmidi; the abc2midi check will be skipped"; \
	else echo "note: to check ABC output with abc2midi run: sudo apt-get install abcmidi"; fi

# Four melodies from the shipped model in different keys, modes, meters and instruments, every
# output format (ABC, MusicXML, score, MIDI, humanized WAV…); two with chords and a backing track.
demo: install audio-deps
	rm -rf $(DEMO)
	$(GENERATE) --key D  --mode major --meter 4/4 --seed 11 --temperature 0.9 --instrument fiddle --chords \
	  --out $(DEMO)/1-d-major-4-4
	$(GENERATE) --key E  --mode minor --meter 3/4 --seed 12 --temperature 0.9 --instrument voice --humanize 0.5 \
	  --out $(DEMO)/2-e-minor-3-4
	$(GENERATE) --key G  --mode major --meter 6/8 --seed 13 --scheme beam --instrument whistle --chords \
	  --out $(DEMO)/3-g-major-6-8
	$(GENERATE) --key Bb --mode major --meter 2/4 --seed 14 --scheme top-p --primer "70 _ 74 _ 77 _ _ _" \
	  --instrument flute --out $(DEMO)/4-bb-major-2-4

# The studio: http://127.0.0.1:8000/ (this machine only).
serve: install audio-deps
	$(BIN)/tunesmith serve --model $(MODEL)

# The suite, then a non-editable install into a fresh venv must find its model and compose.
test: install audio-deps abc-deps browser-deps
	$(BIN)/python -m pytest -q
	$(BIN)/python .ci/check_install.py

# Rebuild the shipped model from scratch (about 10 min on 2 cores; reading the corpus the first
# time on a machine adds about 3): the erk preset trained by one process per core, its best epoch
# exported, then the originality index and the critic added (models/erk.md, "How it was made").
# `make model SHIPPED=/tmp/erk.pt` writes elsewhere; each run keeps its own folder under runs/.
SHIPPED ?= $(MODEL)
RUN     := runs/erk-$(shell date +%Y%m%d-%H%M%S)
model: install
	$(BIN)/torchrun --standalone --nproc_per_node=2 -m tunesmith train --preset erk --out $(RUN)
	$(BIN)/python -c "from tunesmith.training.loop import export_checkpoint as e; e('$(RUN)/best.pt', '$(SHIPPED)')"
	$(BIN)/python -m tunesmith.originality $(SHIPPED)
	$(BIN)/tunesmith critic $(SHIPPED) --quiet

bench: install
	for script in prepare train generate evaluate humanize harmony studio; do $(BIN)/python benchmarks/bench_$$script.py || exit 1; done

clean:
	rm -rf $(VENV) out runs .pytest_cache .web $(SWAGGER)

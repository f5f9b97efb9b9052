#!/usr/bin/env bash
# Extract the console's messages and rebuild the English catalogue (.po and compiled .mo).
set -euo pipefail
cd "$(dirname "$0")/.."
pybabel extract -F console/babel.cfg -k lazy_gettext -o console/translations/messages.pot \
    --no-location --omit-header .
python -m console.translations.english

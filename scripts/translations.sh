#!/usr/bin/env bash
# Extract the console's messages, merge them into the English catalogue and compile it.
# The catalogue (console/translations/en/LC_MESSAGES/messages.po) is the source translators
# edit; new messages arrive in it untranslated (and the console shows them in Latvian).
set -euo pipefail
cd "$(dirname "$0")/.."
pybabel extract -F console/babel.cfg -k lazy_gettext -o console/translations/messages.pot \
    --no-location --omit-header .
pybabel update -i console/translations/messages.pot -d console/translations -l en --no-fuzzy-matching
pybabel compile -d console/translations -l en

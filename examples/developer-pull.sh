#!/bin/sh
# A developer pulls last night's production data onto a laptop: read-only
# access to the production repository, restore into a local directory, start
# the application on it.  Nothing is written to the repository except a
# short-lived lock file.
#
#   COFFER_REPOSITORY=s3:https://s3.example.com/shop-backups \
#   AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY_FILE=~/.config/coffer/s3_secret \
#   COFFER_PASSWORD_FILE=~/.config/coffer/prod_password ./developer-pull.sh
set -eu
: "${COFFER_REPOSITORY:?set COFFER_REPOSITORY to the production repository}"
DEST=${DEST:-./prod-data}

coffer snapshots --tag sidecar
# restore into a new directory first: the old copy is replaced only once the
# restore succeeded (a failed or empty restore leaves it as it was)
NEW="$DEST.new.$$"
rm -rf "$NEW"
coffer restore latest --target "$NEW" --include /backup/app-data
coffer restore latest --target "$NEW" --include /mariadb
rm -rf "$DEST"
mv "$NEW" "$DEST"
# the application's files
ls "$DEST/backup/app-data"
# the database dump loads into a local MariaDB
echo "load the database with: mariadb shop < $DEST/mariadb/shop.sql"

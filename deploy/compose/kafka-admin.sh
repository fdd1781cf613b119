#!/bin/sh
# Runs a Kafka tool as the super user `admin` over SASL/PLAIN: writes its client properties
# (0600, in the container's /tmp) from SASL_PASSWORD_ADMIN, then runs the arguments.
set -eu
umask 077
: "${SASL_PASSWORD_ADMIN:?set SASL_PASSWORD_ADMIN}"
cat > /tmp/admin.properties <<PROPERTIES
security.protocol=SASL_PLAINTEXT
sasl.mechanism=PLAIN
sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" password="${SASL_PASSWORD_ADMIN}";
PROPERTIES
exec "$@"

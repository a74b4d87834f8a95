#!/usr/bin/env bash
# Rolls out an overlay in the order dondoc needs: the schema first, then the services.
#
#   deploy/k8s/rollout.sh deploy/k8s/overlays/small-province
#
# 1. delete the previous dondoc-migrate Job (a Job's pod template is immutable);
# 2. apply everything labelled dondoc/rollout=prepare: namespace, service account,
#    ConfigMaps, Secrets, NetworkPolicies and the dondoc-migrate Job;
# 3. wait for the Job to complete (`dondoc migrate`: schemas, roles, migrations);
# 4. apply everything labelled dondoc/rollout=serve: Deployments, Services, autoscalers,
#    disruption budgets; and wait for each Deployment, directives first.
# A failed migration stops here, before any pod runs the new version.
# Environment: NAMESPACE (dondoc), KUBECTL (kubectl), MIGRATE_TIMEOUT (15m), ROLLOUT_TIMEOUT (10m).
set -euo pipefail

overlay=${1:?usage: rollout.sh OVERLAY_DIR}
ns=${NAMESPACE:-dondoc}
read -r -a kubectl <<<"${KUBECTL:-kubectl}"

echo "--- deleting the previous migration Job, if any"
"${kubectl[@]}" -n "$ns" delete job dondoc-migrate --ignore-not-found --wait=true 2>/dev/null || true

echo "--- applying configuration, secrets, network policies and the migration Job"
"${kubectl[@]}" apply -k "$overlay" -l dondoc/rollout=prepare

echo "--- waiting for dondoc migrate"
if ! "${kubectl[@]}" -n "$ns" wait --for=condition=complete --timeout="${MIGRATE_TIMEOUT:-15m}" job/dondoc-migrate; then
  echo "dondoc migrate did not complete; its logs:" >&2
  "${kubectl[@]}" -n "$ns" logs job/dondoc-migrate --all-containers --tail=100 >&2 || true
  exit 1
fi

echo "--- rolling out the services and the gateway"
"${kubectl[@]}" apply -k "$overlay" -l dondoc/rollout=serve
for deployment in directives assignments notifications gateway; do
  "${kubectl[@]}" -n "$ns" rollout status "deployment/$deployment" --timeout="${ROLLOUT_TIMEOUT:-10m}"
done
echo "dondoc is rolled out in namespace $ns."

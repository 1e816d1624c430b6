#!/usr/bin/env python3
"""Checks that the rendered Kubernetes objects of deploy/kubernetes fit together: what schema
validation cannot see (selectors that select, ports and Secrets that exist, probes on the admin
port, the drain inside the grace period, the security settings the README promises, dotgate's
PROXY v2 backend port being one that Unbound takes the header on and that the Services and
NetworkPolicies let through; the DNSENC port over UDP and TCP from the TOML to the container,
the Service and the NetworkPolicy, and its keys an init container's owner-only copy of a Secret;
the DoH port from the TOML to the container, the Service's 443 and the NetworkPolicy).

  manifests.py RENDERED.yaml TOML_OUT      (scripts/check-deploy.sh runs it)

Writes the ConfigMap's dotgate.toml to TOML_OUT for `dotgate --check-config`. Exits 1 with one
line per problem.
"""
import sys
import tomllib

import yaml

rendered, toml_out = sys.argv[1], sys.argv[2]
objects = [o for o in yaml.safe_load_all(open(rendered)) if o]
problems = []


def check(ok, what):
    if not ok:
        problems.append(what)


def find(kind, name):
    for o in objects:
        if o["kind"] == kind and o["metadata"]["name"] == name:
            return o
    problems.append(f"no {kind} {name}")
    return None


def selects(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


deployment = find("Deployment", "dotgate")
config_map = find("ConfigMap", "dotgate-config")
if not deployment or not config_map:
    sys.exit("\n".join(problems))

namespace = deployment["metadata"].get("namespace")
pod = deployment["spec"]["template"]
pod_labels = pod["metadata"]["labels"]
spec = pod["spec"]
container = next(c for c in spec["containers"] if c["name"] == "dotgate")
ports = {p["name"]: p["containerPort"] for p in container["ports"]}
toml_text = config_map["data"]["dotgate.toml"]
open(toml_out, "w").write(toml_text)
settings = tomllib.loads(toml_text)

# The pods, and what the README promises about them.
check(selects(deployment["spec"]["selector"]["matchLabels"], pod_labels), "Deployment selector misses its pods")
check(deployment["spec"]["replicas"] >= 2, "fewer than 2 replicas")
check("podAntiAffinity" in spec.get("affinity", {}), "no pod anti-affinity")
for c in spec.get("initContainers", []) + [container]:
    security, name = c.get("securityContext", {}), c["name"]
    check(spec["securityContext"].get("runAsNonRoot") or security.get("runAsNonRoot"), f"{name} may run as root")
    check(security.get("readOnlyRootFilesystem") is True, f"{name}: root filesystem not read-only")
    check(security.get("allowPrivilegeEscalation") is False, f"{name}: privilege escalation allowed")
    check(security.get("capabilities", {}).get("drop") == ["ALL"], f"{name}: capabilities not all dropped")
    check(set(security.get("capabilities", {}).get("add", [])) <= {"NET_BIND_SERVICE"}, f"{name}: a capability beyond NET_BIND_SERVICE")
    check(c.get("resources", {}).get("limits") and c["resources"].get("requests"), f"{name}: no resources")

# Ports: the TOML's listen and admin addresses are the container's ports.
check(any(a.endswith(f":{ports.get('dot')}") for a in settings["listen"]), "listen port is not the dot port")
check(settings.get("admin", "").endswith(f":{ports.get('admin')}"), "admin address is not the admin port")
for probe, path in [("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")]:
    get = container.get(probe, {}).get("httpGet", {})
    check(get.get("path") == path and get.get("port") == "admin", f"{probe} is not {path} on the admin port")

# Drain: preStop, then drain-timeout, inside the grace period.
pre_stop = container.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
grace = spec.get("terminationGracePeriodSeconds", 30)
drain = settings.get("drain-timeout", 10)
check(pre_stop > 0, "no preStop wait")
check(pre_stop + drain < grace, f"preStop {pre_stop} s + drain-timeout {drain} s do not fit in the grace period {grace} s")

# Files: every path in the TOML is under a mounted volume, and each volume's source exists.
mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
volumes = {v["name"]: v for v in spec["volumes"]}
for key in ["cert", "key", "ticket-keys"]:
    path = settings.get(key)
    check(path and any(path.startswith(m.rstrip("/") + "/") for m in mounts.values()), f"{key} {path} is not in a mounted volume")
check(any(a == "/etc/dotgate/config/dotgate.toml" for a in container["args"]) and mounts.get("config") == "/etc/dotgate/config",
      "the container does not read the ConfigMap's dotgate.toml")
check(volumes["config"]["configMap"]["name"] == "dotgate-config", "config volume is not dotgate-config")
certificate = find("Certificate", "dotgate")
if certificate:
    check(volumes["tls"]["secret"]["secretName"] == certificate["spec"]["secretName"], "tls volume is not the Certificate's Secret")
    check(certificate["spec"]["privateKey"]["rotationPolicy"] == "Always", "certificate key never rotates")

# Services, and who selects what.
service = find("Service", "dotgate")
if service:
    check(service["spec"]["type"] == "LoadBalancer", "dotgate Service is not a LoadBalancer")
    check(service["spec"].get("externalTrafficPolicy") == "Local", "externalTrafficPolicy is not Local")
    check(selects(service["spec"]["selector"], pod_labels), "dotgate Service selects no dotgate pod")
    check(any(p["port"] == 853 and p["targetPort"] == "dot" and p["protocol"] == "TCP" for p in service["spec"]["ports"]), "no TCP 853 -> dot")
admin = find("Service", "dotgate-admin")
monitor = find("ServiceMonitor", "dotgate")
if admin and monitor:
    check(selects(admin["spec"]["selector"], pod_labels), "admin Service selects no dotgate pod")
    check(selects(monitor["spec"]["selector"]["matchLabels"], admin["metadata"]["labels"]), "ServiceMonitor does not select the admin Service")
    admin_ports = {p["name"] for p in admin["spec"]["ports"]}
    check(all(e["port"] in admin_ports for e in monitor["spec"]["endpoints"]), "ServiceMonitor scrapes a port the admin Service lacks")
pdb = find("PodDisruptionBudget", "dotgate")
if pdb:
    check(selects(pdb["spec"]["selector"]["matchLabels"], pod_labels), "PDB selects no dotgate pod")
hpa = find("HorizontalPodAutoscaler", "dotgate")
if hpa:
    check(hpa["spec"]["scaleTargetRef"]["name"] == "dotgate" and hpa["spec"]["minReplicas"] >= 2, "HPA target or minimum wrong")
policy = find("NetworkPolicy", "dotgate")
if policy:
    allowed = {p["port"] for rule in policy["spec"]["ingress"] for p in rule.get("ports", [])}
    check({ports.get("dot"), ports.get("admin")} <= allowed, "NetworkPolicy shuts out the dot or admin port")


def backend(entry):
    """A `backend` entry ("ADDR[,option...]" or a table) as (host, port, options)."""
    if isinstance(entry, dict):
        address, options = entry["address"], {k: v for k, v in entry.items() if k != "address"}
    else:
        address, *rest = entry.split(",")
        options = {o.partition("=")[0]: o.partition("=")[2] or True for o in rest}
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port), options


def unbound_server(conf):
    """unbound.conf's server clause as a list of (key, value), in order."""
    return [(k.strip(), v.split("#")[0].strip().strip('"')) for k, _, v in
            (line.strip().partition(":") for line in conf.splitlines())
            if k and not k.strip().startswith("#") and v.strip()]


def port_numbers(container, protocol):
    return {p["name"]: p["containerPort"] for p in container["ports"] if p.get("protocol", "TCP") == protocol}


def policy_ports(rule, container, protocol):
    """The pod ports a NetworkPolicy rule admits for a protocol (names resolved in container)."""
    named = port_numbers(container, protocol)
    return {named.get(p["port"], p["port"]) for p in rule.get("ports", []) if p.get("protocol", "TCP") == protocol}


def pod_labels_of(o):
    return o["spec"]["template"]["metadata"]["labels"]


def listen_port(address, default=53):
    """The port of an ADDR[:PORT] setting (an IPv6 address in brackets), or the default."""
    host, colon, port = address.rpartition(":")
    return int(port) if colon and port.isdigit() and (host.endswith("]") or ":" not in host) else default


def run_as_user(c):
    """The user a container of the dotgate pod runs as (its own setting, else the pod's)."""
    return c.get("securityContext", {}).get("runAsUser", spec["securityContext"].get("runAsUser"))


# DNSENC: each dnsenc-listen port is a named container port over UDP and over TCP, which the
# Service takes on 53 and the NetworkPolicy admits from anywhere.
check(settings.get("dnsenc-listen"), "no dnsenc-listen: DNSENC is off")
for dnsenc_port in {listen_port(a) for a in settings.get("dnsenc-listen", [])}:
    for protocol in ["UDP", "TCP"]:
        names = {n for n, p in port_numbers(container, protocol).items() if p == dnsenc_port}
        check(names, f"dnsenc-listen port {dnsenc_port} is no {protocol} container port")
        if service:
            check(any(p.get("targetPort", p["port"]) in names | {dnsenc_port} for p in service["spec"]["ports"]
                      if p["port"] == 53 and p.get("protocol", "TCP") == protocol),
                  f"dotgate Service has no {protocol} 53 -> DNSENC port {dnsenc_port}")
        if policy:
            check(any(dnsenc_port in policy_ports(rule, container, protocol) and not rule.get("from")
                      for rule in policy["spec"].get("ingress", [])),
                  f"dotgate NetworkPolicy does not admit {protocol} {dnsenc_port} (DNSENC) from anywhere")

# DoH: each doh-listen port is a named TCP container port, which the Service takes on 443 (the
# port DoH clients use when a URI template names none) and the NetworkPolicy admits from anywhere.
check(settings.get("doh-listen"), "no doh-listen: DoH is off")
check(settings.get("doh-path", "/dns-query").startswith("/"), "doh-path does not start with /")
for doh_port in {listen_port(a, 443) for a in settings.get("doh-listen", [])}:
    names = {n for n, p in port_numbers(container, "TCP").items() if p == doh_port}
    check(names, f"doh-listen port {doh_port} is no TCP container port")
    check(doh_port not in {ports.get("dot"), ports.get("admin")}, f"doh-listen port {doh_port} is the dot or admin port")
    if service:
        check(any(p.get("targetPort", p["port"]) in names | {doh_port} for p in service["spec"]["ports"]
                  if p["port"] == 443 and p.get("protocol", "TCP") == "TCP"),
              f"dotgate Service has no TCP 443 -> DoH port {doh_port}")
    if policy:
        check(any(doh_port in policy_ports(rule, container, "TCP") and not rule.get("from")
                  for rule in policy["spec"].get("ingress", [])),
              f"dotgate NetworkPolicy does not admit TCP {doh_port} (DoH) from anywhere")

# DNSENC keys: dotgate refuses a key file that group or others may read. A Secret volume's files
# are root's (unreadable to a non-root dotgate at 0400) and group-readable with fsGroup, so the
# keys dotgate reads are an init container's copies, made as dotgate's user in an emptyDir it
# mounts read-only, from a Secret volume it reads through the fsGroup.
check(settings.get("dnsenc-keys"), "no dnsenc-keys")
for path in settings.get("dnsenc-keys", []):
    mount = next((m for m in container["volumeMounts"] if path.startswith(m["mountPath"].rstrip("/") + "/")), None)
    check(mount, f"dnsenc key {path} is not in a mounted volume")
    if not mount:
        continue
    check(mount.get("readOnly") is True, f"dotgate may write the volume of dnsenc key {path}")
    check("emptyDir" in volumes[mount["name"]],
          f"dnsenc key {path} is in volume {mount['name']}, not an init container's emptyDir: a Secret volume's files are root's, 0440 with fsGroup, which dotgate refuses")
    fillers = [c for c in spec.get("initContainers", [])
               if any(m["name"] == mount["name"] and not m.get("readOnly") for m in c.get("volumeMounts", []))]
    check(fillers, f"no init container writes volume {mount['name']}, where dnsenc key {path} is")
    for filler in fillers:
        secrets = [volumes[m["name"]]["secret"] for m in filler.get("volumeMounts", []) if "secret" in volumes[m["name"]]]
        check(secrets, f"init container {filler['name']} mounts no Secret to copy the dnsenc keys from")
        for secret in secrets:
            modes = [secret.get("defaultMode", 0o644)] + [i["mode"] for i in secret.get("items", []) if "mode" in i]
            check(all(m & 0o077 == 0 for m in modes),
                  f"Secret volume of {secret['secretName']}: mode {' '.join(f'{m:04o}' for m in modes)} is open to group or others (want 0400)")
        check(run_as_user(filler) == run_as_user(container),
              f"init container {filler['name']} runs as another user than dotgate: dotgate cannot read its 0400 copies")
        check(spec["securityContext"].get("fsGroup") is not None,
              f"no fsGroup: the Secret's files are root's alone, init container {filler['name']} cannot read them")


# The backend: the Unbound Service by name, in this namespace, selecting Unbound's pods, on the
# port where Unbound takes the PROXY v2 header, which every hop lets through.
unbound = find("Service", "unbound")
unbound_deployment = find("Deployment", "unbound")
unbound_config = find("ConfigMap", "unbound-config")
if unbound and unbound_deployment and unbound_config:
    check(selects(unbound["spec"]["selector"], pod_labels_of(unbound_deployment)), "unbound Service selects no pod")
    backends = [backend(b) for b in settings["backend"]]
    to_unbound = [b for b in backends if b[0] == f"unbound.{namespace}.svc.cluster.local"]
    check(to_unbound, "backend is not the unbound Service")
    server = unbound_server(unbound_config["data"]["unbound.conf"])
    default_port = int(next((v for k, v in server if k == "port"), 53))
    listening = {int(v.partition("@")[2] or default_port) for k, v in server if k == "interface"} or {default_port}
    proxy_ports = {int(v) for k, v in server if k == "proxy-protocol-port"}
    admitted = {int(v.split()[0].partition("@")[2] or default_port) for k, v in server
                if k == "interface-action" and v.split()[1] == "allow"}
    refuse_all = [v for k, v in server if k == "access-control" and v.split()[0] in ("0.0.0.0/0", "::/0")
                  and v.split()[1] != "allow"]
    unbound_pod = unbound_deployment["spec"]["template"]["spec"]
    unbound_container = next(c for c in unbound_pod["containers"] if c["name"] == "unbound")
    unbound_policy = find("NetworkPolicy", "unbound")
    for probe in ["readinessProbe", "livenessProbe"]:
        port = unbound_container.get(probe, {}).get("tcpSocket", {}).get("port")
        port = port_numbers(unbound_container, "TCP").get(port, port)
        check(port not in proxy_ports, f"unbound {probe} is on the PROXY v2 port {port}: a probe sends no header")
    for _, service_port, options in to_unbound:
        proxied = options.get("proxy-protocol") in (True, "true")
        what = f"backend port {service_port}"
        for protocol in ["UDP", "TCP"]:
            # Service port -> the Unbound container's port, which Unbound listens on.
            exposed = [p for p in unbound["spec"]["ports"] if p["port"] == service_port and p.get("protocol", "TCP") == protocol]
            check(exposed, f"unbound Service has no {protocol} port {service_port}")
            for p in exposed:
                target = p.get("targetPort", service_port)
                pod_port = port_numbers(unbound_container, protocol).get(target, target)
                check(pod_port in port_numbers(unbound_container, protocol).values(),
                      f"unbound Service {protocol} {service_port} targets {target}, which the unbound container lacks")
                check(pod_port in listening, f"Unbound listens on no interface @{pod_port} ({what})")
                check(proxied == (pod_port in proxy_ports),
                      f"{what}: dotgate sends {'a' if proxied else 'no'} PROXY v2 header, "
                      f"but Unbound's port {pod_port} is {'not ' if proxied else ''}a proxy-protocol-port")
                if proxied:
                    check(pod_port in admitted, f"Unbound's PROXY v2 port {pod_port} has no `interface-action: ...@{pod_port} allow`: DoT clients outside access-control's allow lines get REFUSED")
                    check(not refuse_all, f"access-control {refuse_all} names every client: Unbound refuses DoT clients on {pod_port}")
                # Both NetworkPolicies let dotgate reach that pod port.
                if policy:
                    check(any(pod_port in policy_ports(rule, unbound_container, protocol)
                              and any(selects(t.get("podSelector", {}).get("matchLabels"), pod_labels_of(unbound_deployment)) for t in rule.get("to", []))
                              for rule in policy["spec"].get("egress", [])),
                          f"dotgate NetworkPolicy lets no {protocol} out to unbound port {pod_port}")
                if unbound_policy:
                    check(any(pod_port in policy_ports(rule, unbound_container, protocol)
                              and any(selects(f.get("podSelector", {}).get("matchLabels"), pod_labels) for f in rule.get("from", []))
                              for rule in unbound_policy["spec"].get("ingress", [])),
                          f"unbound NetworkPolicy admits no {protocol} from dotgate on port {pod_port}")

if problems:
    sys.exit("\n".join(dict.fromkeys(problems)))
print(f"{len(objects)} objects fit together")

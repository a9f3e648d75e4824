# Sourced by scripts/bench-webhooks.sh and scripts/soak.sh: `bench_project DIR NAME` writes a
# project whose workflow `bench` (one `wait 0s` task) is started by the GitHub-verified webhook
# `bench`, and exports the signed push delivery wrk sends (WH_PATH, WH_BODY, WH_SIG).
bench_project() {
  mkdir -p "$1/workflows"
  cat > "$1/compozy.yaml" <<YAML
project:
  name: $2
autoload:
  include: ["workflows/*.yaml"]
  watch: false
YAML
  cat > "$1/workflows/bench.yaml" <<'YAML'
resource: workflow
id: bench
triggers:
  - type: webhook
    slug: bench
    source: github
    verify: { method: github, secret: bench-secret }
    # wrk replays one signed body, so the default ID (a hash of the signed body) would make every
    # request after the first a duplicate: the bench keys on the unique delivery header instead.
    dedupe: { key: header.X-GitHub-Delivery, signed_hash: false }
    events:
      - name: push
        filter: 'headers["x-github-event"] == "push"'
        input: { repo: "{{ body.repository.full_name }}", commits: "{{ body.commits | length }}" }
        schema: { type: object, required: [repo] }
tasks:
  - { id: done, type: wait, duration: 0s }
YAML
  local body='{"ref":"refs/heads/main","repository":{"full_name":"acme/api"},"commits":[{"id":"a1"},{"id":"b2"}],"pusher":{"name":"ci"}}'
  WH_SIG="sha256=$(printf '%s' "$body" | openssl dgst -sha256 -hmac bench-secret | awk '{print $NF}')"
  export WH_PATH=/api/v0/hooks/bench WH_BODY="$body" WH_SIG
}

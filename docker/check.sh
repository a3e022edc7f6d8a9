#!/usr/bin/env bash
# make docker-check: both images built and run on this machine, with podman and no registry.
# Installs podman, runc and debootstrap when missing, makes the local Debian base when missing
# (docker/local-base.sh), builds both images on it, runs a smoke test in each (the pipeline image
# shards generated clips from a mounted folder; the training image trains tiny for 3 steps on
# them on the CPU and exports the encoder), then prints the images' sizes. Run as root.
#
#   docker/check.sh        (environment: BASE, DOCKER_CA, PIP_CONF, PIPELINE_IMAGE, TRAIN_IMAGE)
#
# BASE       base of both images (default: localhost/debian-bookworm:base, made when missing)
# DOCKER_CA  CA bundle handed to pip as the build secret "ca" (TLS-inspecting proxies); default:
#            Debian's bundle when present
# PIP_CONF   a pip.conf handed to pip as the build secret "pipconf" (an index with credentials)
set -euo pipefail

start=$(date +%s)
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
base="${BASE:-localhost/debian-bookworm:base}"
pipeline_image="${PIPELINE_IMAGE:-localhost/mygo-pipeline:check}"
train_image="${TRAIN_IMAGE:-localhost/mygo-train:check}"
ca="${DOCKER_CA-/etc/ssl/certs/ca-certificates.crt}"
# podman's settings for this machine (no systemd cgroups, runc); the system's files stay as they are.
export CONTAINERS_CONF="${CONTAINERS_CONF:-$root/docker/containers.conf}"
podman=(podman --runtime runc)
export PODMAN="${podman[*]}"

missing=()
for tool in podman runc debootstrap; do command -v "$tool" >/dev/null || missing+=("$tool"); done
if ((${#missing[@]})); then
  echo "docker-check: installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
"${podman[@]}" image exists "$base" || docker/local-base.sh "$base"

secrets=()
[ -z "$ca" ] || [ ! -s "$ca" ] || secrets+=(--secret "id=ca,src=$ca")
[ -z "${PIP_CONF:-}" ] || secrets+=(--secret "id=pipconf,src=$PIP_CONF")
for role in pipeline train; do
  image="$pipeline_image"
  [ "$role" = pipeline ] || image="$train_image"
  echo "docker-check: building $image on $base"
  # docker format: keeps SHELL, which the OCI format drops.
  "${podman[@]}" build --format docker --build-arg "BASE=$base" "${secrets[@]}" \
    -f "docker/Dockerfile.$role" -t "$image" .
done

data="$(mktemp -d)"
trap 'rm -rf "$data"' EXIT
mkdir "$data/audio"
# :U hands the folder to the images' user (uid 10001).
run=("${podman[@]}" run --rm --network none -v "$data:/data:U")

echo "docker-check: pipeline image: 8 generated 10 s clips sharded"
"${run[@]}" --entrypoint bash "$pipeline_image" -c '
  for i in 0 1 2 3 4 5 6 7; do
    ffmpeg -loglevel error -f lavfi -i "sine=frequency=$((220 + 110 * i)):duration=10:sample_rate=48000" \
      -f lavfi -i "anoisesrc=duration=10:sample_rate=48000:amplitude=0.05:seed=$i" \
      -filter_complex amix=inputs=2 -ac 1 "/data/audio/clip$i.wav"
  done'
"${run[@]}" --entrypoint python "$pipeline_image" -m pipeline \
  --audio-dir /data/audio --split train --out /data/shards --cache /data/cache --num-shards 1
test -s "$data/shards/train-00000-of-00001.tfrecord"

echo "docker-check: training image: tiny trained for 3 steps on the CPU, encoder exported"
"${run[@]}" "$train_image" train --shards /data/shards --out /data/run --model tiny --steps 3 --batch 4
"${run[@]}" "$train_image" export --run /data/run --out /data/export
test -s "$data/export/saved_model.pb"

echo "docker-check: passed in $(( $(date +%s) - start )) s; image sizes:"
"${podman[@]}" images --format '{{.Repository}}:{{.Tag}} {{.Size}}' "$pipeline_image"
"${podman[@]}" images --format '{{.Repository}}:{{.Tag}} {{.Size}}' "$train_image"

#!/usr/bin/env bash
# Install news-monitor from this source checkout as a systemd service, or remove it.
#
#   venv    /opt/news-monitor/venv         replaced package on every run (upgrade in place)
#   config  /etc/news-monitor/             monitor.yaml, feeds.yaml, rules/: written only when
#                                          absent; an edited file is kept and the shipped
#                                          version is put beside it as <name>.dist
#   unit    /etc/systemd/system/news-monitor.service   ours: replaced when it differs
#   state   /var/lib/news-monitor          made by systemd (StateDirectory=); removed only by --purge
#
# Running it twice changes nothing the second time but the package. Every location can be
# moved (--prefix, --etc, --unit-dir, --state-dir) and --no-systemctl leaves systemd alone,
# so it runs unprivileged into scratch folders; root is needed only for the real locations.
# See deploy/README.md.
set -euo pipefail
umask 022   # the service runs as a dynamic user: venv and config must be world-readable

UNIT_NAME=news-monitor.service
src=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

DEFAULT_PREFIX=/opt/news-monitor
DEFAULT_ETC=/etc/news-monitor
DEFAULT_UNIT_DIR=/etc/systemd/system
DEFAULT_STATE=/var/lib/news-monitor
prefix=$DEFAULT_PREFIX
etc=$DEFAULT_ETC
unit_dir=$DEFAULT_UNIT_DIR
state=$DEFAULT_STATE
python=python3
action=install
use_systemctl=1
enable=1
start=1

usage() {
    cat <<EOF
usage: $0 [options]

Install or upgrade news-monitor from $src.

  --prefix DIR      the venv goes to DIR/venv           (default $DEFAULT_PREFIX)
  --etc DIR         monitor.yaml, feeds.yaml, rules/    (default $DEFAULT_ETC)
  --unit-dir DIR    where $UNIT_NAME goes  (default $DEFAULT_UNIT_DIR)
  --state-dir DIR   the daemon's state                  (default $DEFAULT_STATE)
  --python EXE      interpreter for the venv, 3.11+     (default python3)
  --no-systemctl    do not call systemctl at all
  --no-enable       do not enable the service at boot
  --no-start        do not start or restart the service
  --uninstall       remove the venv and the unit; keep config and state
  --purge           --uninstall, and remove config and state too
  -h, --help        this text
EOF
}

die() { echo "install.sh: error: $*" >&2; exit 1; }
bad_usage() { echo "install.sh: $*" >&2; usage >&2; exit 2; }
bad_path() { echo "install.sh: $* (see --help)" >&2; exit 2; }
say() { echo "install.sh: $*"; }

while (($#)); do
    case $1 in
        --prefix|--etc|--unit-dir|--state-dir|--python)
            (($# >= 2)) || bad_usage "$1 needs a value"
            case $1 in
                --prefix) prefix=$2 ;;
                --etc) etc=$2 ;;
                --unit-dir) unit_dir=$2 ;;
                --state-dir) state=$2 ;;
                --python) python=$2 ;;
            esac
            shift 2 ;;
        --no-systemctl) use_systemctl=0; shift ;;
        --no-enable) enable=0; shift ;;
        --no-start) start=0; shift ;;
        --uninstall) action=uninstall; shift ;;
        --purge) action=purge; shift ;;
        -h|--help) usage; exit 0 ;;
        *) bad_usage "unknown option: $1" ;;
    esac
done

system_folder() {
    case $1 in
        /|/bin|/boot|/dev|/etc|/home|/lib|/lib64|/opt|/proc|/root|/run|/sbin|/srv|/sys|/tmp|/usr|/usr/*bin|/usr/lib|/var|/var/lib|/var/lib/private)
            return 0 ;;
    esac
    return 1
}

# Paths end up in the unit file and the YAML config unquoted: keep them to plain characters,
# absolute, and clear of the folders a typo would wipe with --purge.
for pair in prefix:--prefix etc:--etc unit_dir:--unit-dir state:--state-dir; do
    var=${pair%%:*} option=${pair#*:}
    value=${!var%/}
    [[ $value =~ ^/[A-Za-z0-9._+/-]+$ ]] \
        || bad_path "$option must be an absolute path of letters, digits and ._+-/: '${!var}'"
    if system_folder "$value"; then bad_path "$option $value is a system folder"; fi
    printf -v "$var" '%s' "$value"
done
venv=$prefix/venv
unit=$unit_dir/$UNIT_NAME

# systemctl only where systemd runs (the test sd_booted() makes); a container has none.
if ((use_systemctl)) && [[ ! -d /run/systemd/system ]]; then
    say "systemd is not running here: not calling systemctl"
    use_systemctl=0
fi

# The unit's dynamic user writes only under /var/lib (StateDirectory=, step 3): refuse a
# state folder elsewhere before anything is written, when the service is to be started.
if ((use_systemctl)) && [[ $action == install && $state != /var/lib/* ]]; then
    bad_path "--state-dir $state: the service runs as a dynamic user that can write only" \
             "under /var/lib; choose a folder there, or --no-systemctl and adapt the unit"
fi

# Root only when something we write or remove lies where we may not write.
writable() {
    local p=$1
    while [[ ! -e $p ]]; do p=$(dirname "$p"); done
    [[ -w $p ]]
}
need=()
for path in "$venv" "$unit_dir"; do writable "$path" || need+=("$path"); done
if [[ $action != uninstall ]]; then
    for path in "$etc" "$state"; do
        [[ $action == install && $path == "$state" ]] && continue
        writable "$path" || need+=("$path")
    done
fi
if ((${#need[@]})) || { ((use_systemctl)) && ((EUID != 0)); }; then
    ((EUID == 0)) || die "run as root: cannot write ${need[*]:-through systemctl}" \
        "(or move every location with --prefix/--etc/--unit-dir/--state-dir and --no-systemctl)"
fi

systemctl_quiet() { systemctl "$@" >/dev/null 2>&1 || true; }

# --- uninstall / purge -----------------------------------------------------------------

if [[ $action != install ]]; then
    if ((use_systemctl)); then
        systemctl_quiet disable --now "$UNIT_NAME"
    fi
    if [[ -e $unit ]]; then
        rm -f "$unit"
        say "removed $unit"
        if ((use_systemctl)); then systemctl daemon-reload; fi
    fi
    if [[ -e $venv ]]; then
        rm -rf "$venv"
        say "removed $venv"
    fi
    rmdir "$prefix" 2>/dev/null || true
    if [[ $action == purge ]]; then
        # With DynamicUser= the state folder is a link into /var/lib/private: remove both.
        if [[ -L $state ]]; then
            target=$(readlink -f "$state")
            system_folder "$target" && die "$state links to $target: not removing that"
            rm -rf "$target"
            rm -f "$state"
            say "removed $state and $target"
        elif [[ -e $state ]]; then
            rm -rf "$state"
            say "removed $state"
        fi
        if [[ -e $etc ]]; then
            rm -rf "$etc"
            say "removed $etc"
        fi
    else
        say "kept $etc (config, feeds, rules) and $state (state); --purge removes them"
    fi
    exit 0
fi

# --- install ---------------------------------------------------------------------------

[[ -f $src/pyproject.toml && -f $src/systemd/$UNIT_NAME ]] \
    || die "$src is not a news-monitor source checkout"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# 1. The package, in a venv of its own; a venv whose interpreter is gone is made anew.
if [[ -x $venv/bin/python ]] && ! "$venv/bin/python" -c '' 2>/dev/null; then
    say "$venv is broken (its interpreter is gone): making it anew"
    rm -rf "$venv"
fi
if [[ ! -x $venv/bin/python ]]; then
    command -v "$python" >/dev/null || die "no $python: install Python 3.11+ or pass --python"
    "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
        || die "$python is older than 3.11"
    mkdir -p "$prefix"
    "$python" -m venv "$venv"
    say "created $venv"
fi
# Built from a clean copy: an in-tree build would leave root-owned files in the checkout and
# reuse its build/ folder, whose stale modules (deleted from the source since) end up in the wheel.
mkdir "$tmp/src"
tar -C "$src" --exclude=./.git --exclude=./.venv --exclude=./build --exclude='*.egg-info' \
    --exclude='./.*cache' --exclude=./.hypothesis --exclude=./state -cf - . | tar -C "$tmp/src" -xf -
"$venv/bin/python" -m pip install --quiet --upgrade "$tmp/src"
say "installed $("$venv/bin/news-monitor" --version) into $venv"

# 2. Config, feeds and rules: the operator's once written. A file whose content is ours is
#    left alone; an edited one is kept and the shipped version goes beside it as .dist.
conffile() {  # conffile SHIPPED INSTALLED [new|dist]: "dist" never writes INSTALLED itself
    local shipped=$1 dest=$2 when_absent=${3:-new}
    if [[ ! -e $dest && $when_absent == new ]]; then
        install -D -m 0644 "$shipped" "$dest"
        say "installed $dest"
    elif [[ -e $dest ]] && cmp -s "$shipped" "$dest"; then
        if [[ -e $dest.dist ]]; then rm -f "$dest.dist"; say "removed stale $dest.dist"; fi
    elif [[ -e $dest.dist ]] && cmp -s "$shipped" "$dest.dist"; then
        if [[ -e $dest ]]; then
            say "kept $dest (yours; the shipped version is in $dest.dist)"
        else
            say "not enabled: shipped file $dest.dist (rename it to use it)"
        fi
    else
        install -D -m 0644 "$shipped" "$dest.dist"
        if [[ -e $dest ]]; then
            say "kept $dest (yours); the shipped version is now in $dest.dist"
        else
            say "not enabled: new shipped file $dest.dist (rename it to use it)"
        fi
    fi
}

# The shipped monitor.yaml points at the checkout's layout (../rules, ../state); installed,
# the rules sit beside it and the state in the state folder.
replace_line() {  # replace_line FILE OLD NEW: exactly one whole line, or fail
    local file=$1 old=$2 new=$3 line found=0
    : >"$file.new"
    while IFS= read -r line || [[ -n $line ]]; do
        if [[ $line == "$old" ]]; then line=$new; found=$((found + 1)); fi
        printf '%s\n' "$line" >>"$file.new"
    done <"$file"
    ((found == 1)) || die "$src/deploy/monitor.yaml: expected one line '$old', found $found"
    mv "$file.new" "$file"
}
cp "$src/deploy/monitor.yaml" "$tmp/monitor.yaml"
replace_line "$tmp/monitor.yaml" "state_dir: ../state" "state_dir: $state"
replace_line "$tmp/monitor.yaml" "    - ../rules" "    - rules"

install -d -m 0755 "$etc"
conffile "$tmp/monitor.yaml" "$etc/monitor.yaml"
conffile "$src/deploy/feeds.yaml" "$etc/feeds.yaml"
# Rules: the whole folder on a first install. Afterwards it is the operator's rule set: a
# shipped rule file that is new or changed is only put beside as .dist, never switched on.
if [[ ! -e $etc/rules ]]; then
    mkdir -p "$etc/rules"
    (cd "$src/rules" && find . -type f \( -name '*.yaml' -o -name '*.yml' \) -print0) |
        while IFS= read -r -d '' rel; do
            install -D -m 0644 "$src/rules/$rel" "$etc/rules/$rel"
        done
    say "installed $etc/rules/"
else
    (cd "$src/rules" && find . -type f \( -name '*.yaml' -o -name '*.yml' \) -print0) |
        while IFS= read -r -d '' rel; do
            conffile "$src/rules/$rel" "$etc/rules/${rel#./}" dist
        done
fi

# 3. The unit: ours, so replaced when it differs, with the paths moved if they were.
unit_text=$(<"$src/systemd/$UNIT_NAME")
unit_text=${unit_text//\/opt\/news-monitor\/venv/"$venv"}
unit_text=${unit_text//\/etc\/news-monitor/"$etc"}
unit_text=${unit_text//\/var\/lib\/news-monitor/"$state"}
# The service's dynamic user can write only the folder systemd makes for it under /var/lib
# (StateDirectory=): a state folder elsewhere would be read-only to it.
if [[ $state == /var/lib/* ]]; then
    unit_text=${unit_text//StateDirectory=news-monitor/"StateDirectory=${state#/var/lib/}"}
else
    say "note: $UNIT_NAME cannot write $state (its dynamic user writes only under /var/lib);" \
        "the unit is for a state folder there"
fi
printf '%s\n' "$unit_text" >"$tmp/$UNIT_NAME"
if [[ -e $unit ]] && cmp -s "$tmp/$UNIT_NAME" "$unit"; then
    :
else
    install -D -m 0644 "$tmp/$UNIT_NAME" "$unit"
    say "installed $unit"
fi

# 4. Nothing (re)starts on a config the daemon would refuse.
if ! NEWS_MONITOR_STATE_DIR=$state "$venv/bin/news-monitor" --config "$etc/monitor.yaml" check
then
    die "the config in $etc does not pass 'news-monitor check': fix it and run this again" \
        "(the service was not (re)started)"
fi

if ((use_systemctl)); then
    systemctl daemon-reload
    if ((enable)); then systemctl enable --quiet "$UNIT_NAME"; fi
    if ((start)); then
        systemctl restart "$UNIT_NAME"
        say "(re)started $UNIT_NAME: journalctl -u $UNIT_NAME -f"
    fi
else
    say "systemctl not called: run 'systemctl daemon-reload && systemctl enable --now $UNIT_NAME'"
fi

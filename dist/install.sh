#!/bin/sh
# dist/install.sh — install nftjail on a host (or into a staging tree), `make install` style.
#
#   dist/install.sh [--prefix DIR] [--binary FILE] [--unitdir DIR] [--no-reload]
#   dist/install.sh --uninstall [--prefix DIR] [--unitdir DIR] [--no-reload]
#   DESTDIR=/tmp/stage dist/install.sh ...        # stage every file under /tmp/stage
#
# What goes where (defaults):
#   PREFIX/bin/nftjail                    the binary (from target/release/nftjail or --binary)
#   PREFIX/lib/systemd/system/            nftjail.service, with ExecStart= pointing at the binary
#                                         (/etc/systemd/system for a PREFIX systemd does not search)
#   PREFIX/share/nftjail/config.sha256    what this script installed under /etc/nftjail, to
#                                         tell shipped files from local edits on the next run
#   /etc/nftjail/nftjail.toml             the main configuration          } never overwritten once
#   /etc/nftjail/jail.d/10-NAME.toml      the shipped jails (jails/NAME)  } edited (see below)
#   /etc/nftjail/filter.d/                empty: local filters go here
#   /etc/nftjail/firewall.d/              empty: the host firewall's rules go here (it is off
#                                         until `nftjail firewall enable` or [firewall] enabled)
#   PREFIX/share/doc/nftjail/examples/firewall.d/10-hosting.toml
#                                         the firewall example (firewall/hosting.toml), to copy
#                                         into /etc/nftjail/firewall.d/ and edit; never in force
#                                         by itself, replaced on every run like the binary
# The state (/var/lib/nftjail) and the socket directory (/run/nftjail) are created by systemd
# (StateDirectory=, RuntimeDirectory=), not here.
#
# Configuration files are treated as dpkg treats conffiles: a file still exactly as this script
# installed it is replaced by the new shipped version; a file the administrator changed is left
# alone and the new version is written beside it as FILE.dist (which the daemon ignores: it
# reads only *.toml). Local overrides belong in their own file, e.g. jail.d/99-local.toml.
#
# Idempotent: running it twice changes nothing the second time. Run as root (unless DESTDIR is
# set). With DESTDIR, systemctl is never called.
set -eu

usage() {
    sed -n '4,6s/^# \{0,1\}//p' "$0"
    echo "Options:"
    echo "  --prefix DIR    install the binary under DIR/bin (default /usr/local)"
    echo "  --binary FILE   the nftjail binary to install (default target/release/nftjail)"
    echo "  --unitdir DIR   where the systemd unit goes (default PREFIX/lib/systemd/system for"
    echo "                  /usr and /usr/local, else /etc/systemd/system)"
    echo "  --no-reload     do not run systemctl (daemon-reload, disable --now)"
    echo "  --uninstall     remove what was installed; keeps edited configuration and the state"
}

die() {
    echo "install.sh: $*" >&2
    exit 1
}

say() {
    echo "  $*"
}

# ---- arguments -------------------------------------------------------------------------------

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
prefix=/usr/local
binary=
unitdir=
reload=yes
action=install
while [ $# -gt 0 ]; do
    case $1 in
        --prefix) [ $# -ge 2 ] || die "--prefix needs a directory"; prefix=$2; shift 2 ;;
        --prefix=*) prefix=${1#--prefix=}; shift ;;
        --binary) [ $# -ge 2 ] || die "--binary needs a file"; binary=$2; shift 2 ;;
        --binary=*) binary=${1#--binary=}; shift ;;
        --unitdir) [ $# -ge 2 ] || die "--unitdir needs a directory"; unitdir=$2; shift 2 ;;
        --unitdir=*) unitdir=${1#--unitdir=}; shift ;;
        --no-reload) reload=no; shift ;;
        --uninstall) action=uninstall; shift ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; exit 2 ;;
    esac
done
case $prefix in
    /*) ;;
    *) die "--prefix must be an absolute path: $prefix" ;;
esac
# The prefix ends up in a sed replacement and in the unit file: keep it to plain path characters.
case $prefix in
    *[!A-Za-z0-9._/+-]*) die "--prefix may only contain letters, digits and . _ / + -: $prefix" ;;
esac
prefix=${prefix%/}
destdir=${DESTDIR:-}
destdir=${destdir%/}

bindir=$prefix/bin
sharedir=$prefix/share/nftjail
exampledir=$prefix/share/doc/nftjail/examples
confdir=/etc/nftjail
if [ -z "$unitdir" ]; then
    case $prefix in
        # Both are on systemd's unit search path (`systemd-analyze unit-paths`); keeping the
        # unit out of /etc/systemd/system leaves that to the administrator's overrides.
        /usr|/usr/local) unitdir=$prefix/lib/systemd/system ;;
        *) unitdir=/etc/systemd/system ;;
    esac
fi
manifest=$sharedir/config.sha256

if [ -z "$destdir" ] && [ "$(id -u)" -ne 0 ]; then
    die "run as root (or set DESTDIR to stage the files elsewhere)"
fi
# systemctl only on the live system, and only when systemd is the running init.
if [ -n "$destdir" ] || [ ! -d /run/systemd/system ]; then
    reload=no
fi

# ---- helpers ---------------------------------------------------------------------------------

# The recorded checksum of configuration file $1 (absolute, without DESTDIR), or nothing.
recorded() {
    [ -f "$destdir$manifest" ] || return 0
    awk -v f="$1" '$2 == f { print $1 }' "$destdir$manifest"
}

checksum() {
    sha256sum "$1" | cut -d' ' -f1
}

# Installs configuration file $1 as $2 (absolute, without DESTDIR), never over a local edit.
# Appends "SUM PATH" to $new_manifest: the checksum of the shipped file now in place, or "-"
# for a locally edited one (never replaced, never removed).
install_config() {
    src=$1
    dest=$2
    target=$destdir$dest
    new=$(checksum "$src")
    if [ ! -e "$target" ]; then
        install -m 0644 "$src" "$target"
        say "installed $dest"
    else
        old=$(checksum "$target")
        if [ "$old" = "$new" ]; then
            : # already the shipped version
        elif [ "$old" = "$(recorded "$dest")" ]; then
            # Unchanged since we installed it: take the new shipped version.
            install -m 0644 "$src" "$target"
            say "updated $dest"
        else
            install -m 0644 "$src" "$target.dist"
            say "kept $dest (edited locally); the shipped version is $dest.dist"
            echo "- $dest" >>"$new_manifest"
            return 0
        fi
    fi
    rm -f "$target.dist"
    echo "$new $dest" >>"$new_manifest"
}

# ---- install ---------------------------------------------------------------------------------

do_install() {
    [ -n "$binary" ] || binary=$root/target/release/nftjail
    if [ ! -f "$binary" ] || [ ! -x "$binary" ]; then
        die "no executable $binary: build it with \`cargo build --release\` or pass --binary FILE"
    fi
    if [ ! -f "$root/systemd/nftjail.service" ] || [ ! -f "$here/nftjail.toml" ] \
        || [ ! -d "$root/jails" ] || [ ! -f "$root/firewall/hosting.toml" ]; then
        die "run this script from an nftjail source tree (systemd/, dist/, jails/, firewall/)"
    fi

    echo "Installing nftjail into ${destdir:-/} (prefix $prefix)"
    install -d -m 0755 "$destdir$bindir" "$destdir$unitdir" "$destdir$sharedir"
    # Copy then rename: a running daemon keeps its old inode, and nothing sees half a file.
    if ! cmp -s "$binary" "$destdir$bindir/nftjail"; then
        install -m 0755 "$binary" "$destdir$bindir/.nftjail.new"
        mv -f "$destdir$bindir/.nftjail.new" "$destdir$bindir/nftjail"
        say "installed $bindir/nftjail"
    fi

    # The unit names the binary by absolute path: follow --prefix.
    sed "s#/usr/bin/nftjail#$bindir/nftjail#g" "$root/systemd/nftjail.service" \
        >"$destdir$unitdir/.nftjail.service.new"
    chmod 0644 "$destdir$unitdir/.nftjail.service.new"
    unit_changed=no
    if cmp -s "$destdir$unitdir/.nftjail.service.new" "$destdir$unitdir/nftjail.service"; then
        rm -f "$destdir$unitdir/.nftjail.service.new"
    else
        mv -f "$destdir$unitdir/.nftjail.service.new" "$destdir$unitdir/nftjail.service"
        say "installed $unitdir/nftjail.service"
        unit_changed=yes
    fi

    # An example, not configuration: always the shipped version (a copy in firewall.d is yours).
    install -d -m 0755 "$destdir$exampledir/firewall.d"
    example=$exampledir/firewall.d/10-hosting.toml
    if ! cmp -s "$root/firewall/hosting.toml" "$destdir$example"; then
        install -m 0644 "$root/firewall/hosting.toml" "$destdir$example"
        say "installed $example"
    fi

    # Directories only when missing, so a mode the administrator chose stays.
    for dir in "$confdir" "$confdir/jail.d" "$confdir/filter.d" "$confdir/firewall.d"; do
        if [ ! -d "$destdir$dir" ]; then
            install -d -m 0755 "$destdir$dir"
            say "created $dir/"
        fi
    done
    new_manifest=$destdir$manifest.new
    : >"$new_manifest"
    install_config "$here/nftjail.toml" "$confdir/nftjail.toml"
    # jail.d/ is read in lexical order, later files overriding earlier ones: the shipped jails
    # get a low number so that a local 50-… or 99-local.toml sorts after them (unprefixed,
    # "sshd.toml" would sort after "99-local.toml" and undo the local override).
    for jail in "$root"/jails/*.toml; do
        install_config "$jail" "$confdir/jail.d/10-$(basename "$jail")"
    done
    chmod 0644 "$new_manifest"
    mv -f "$new_manifest" "$destdir$manifest"

    if [ "$reload" = yes ] && [ "$unit_changed" = yes ]; then
        systemctl daemon-reload
        say "systemctl daemon-reload"
    fi

    echo
    echo "Next steps:"
    printf '  %-36s # %s\n' \
        "$bindir/nftjail check" "validate /etc/nftjail (errors as PATH:LINE:COL)" \
        "systemctl enable --now nftjail" "start it now and at every boot" \
        "$bindir/nftjail status" "jails and counters"
    echo "Local changes go in new files, e.g. $confdir/jail.d/99-local.toml; unit changes in"
    echo "\`systemctl edit nftjail\`. If nftjail was already running: systemctl restart nftjail"
    echo "The host firewall is off; an example of its rules: $example"
}

# ---- uninstall -------------------------------------------------------------------------------

do_uninstall() {
    echo "Removing nftjail from ${destdir:-/} (prefix $prefix)"
    if [ "$reload" = yes ] && systemctl cat nftjail.service >/dev/null 2>&1; then
        # Stop first, so no daemon runs from a deleted binary. Bans stay in the kernel and expire.
        systemctl disable --now nftjail.service
        say "systemctl disable --now nftjail"
    fi
    for file in "$bindir/nftjail" "$unitdir/nftjail.service" \
        "$exampledir/firewall.d/10-hosting.toml"; do
        if [ -e "$destdir$file" ]; then
            rm -f "$destdir$file"
            say "removed $file"
        fi
    done

    # Configuration: remove what is still exactly as shipped, keep local edits.
    if [ -f "$destdir$manifest" ]; then
        while read -r sum path; do
            target=$destdir$path
            rm -f "$target.dist"
            [ -f "$target" ] || continue
            if [ "$(checksum "$target")" = "$sum" ]; then
                rm -f "$target"
                say "removed $path"
            else
                say "kept $path (edited locally)"
            fi
        done <"$destdir$manifest"
        rm -f "$destdir$manifest"
    fi
    # Directories go only when empty (local jails and filters stay).
    for dir in "$confdir/jail.d" "$confdir/filter.d" "$confdir/firewall.d" "$confdir" "$sharedir" \
        "$exampledir/firewall.d" "$exampledir" "$prefix/share/doc/nftjail"; do
        if [ -d "$destdir$dir" ] && rmdir "$destdir$dir" 2>/dev/null; then
            say "removed $dir/"
        elif [ -d "$destdir$dir" ]; then
            say "kept $dir/ (not empty)"
        fi
    done

    if [ "$reload" = yes ]; then
        systemctl daemon-reload
        say "systemctl daemon-reload"
    fi
    echo
    echo "Kept: the state (/var/lib/nftjail, or /var/lib/private/nftjail) and the bans in the"
    echo "kernel, which expire by themselves. To drop them now: nft delete table inet nftjail"
}

case $action in
    install) do_install ;;
    uninstall) do_uninstall ;;
esac

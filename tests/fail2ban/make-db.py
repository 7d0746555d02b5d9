#!/usr/bin/python3
"""Writes a fail2ban database with fail2ban's own Fail2BanDb (Debian's fail2ban package).

Usage: make-db.py DB COUNT NOW

COUNT active bans in jail "sshd" (IPv4, one in ten IPv6; started up to 500 s before NOW, for
10 min to 1 day, ban counts 1-5), one permanent one, two that are over by NOW, and three in a
jail nftjail does not have ("apache-auth"). Prints one JSON line per ban it wrote:
{"jail", "ip", "end" (null: permanent), "count"}, so a test knows what to expect without
reading the database the way the code under test does.
"""
import json
import sys

from fail2ban.server.database import Fail2BanDb
from fail2ban.server.ticket import BanTicket


class Actions:
    def __init__(self, bantime):
        self.bantime = bantime

    def getBanTime(self):
        return self.bantime


class Jail:
    def __init__(self, name, bantime=600):
        self.name = name
        self.actions = Actions(bantime)


def main():
    path, count, now = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    db = Fail2BanDb(path)
    # One commit per ban is fail2ban's way; the fixture need not wait for 5,000 fsyncs.
    db._db.execute("PRAGMA synchronous = OFF")
    sshd, apache = Jail("sshd"), Jail("apache-auth")
    db.addJail(sshd)
    db.addJail(apache)
    written = []

    def ban(jail, ip, since, bantime, bancount):
        ticket = BanTicket(ip, since)
        ticket.setBanTime(bantime)
        ticket.setBanCount(bancount)
        db.addBan(jail, ticket)
        end = None if bantime < 0 else since + bantime
        written.append({"jail": jail.name, "ip": ip, "end": end, "count": bancount})

    for n in range(count):
        if n % 10 == 9:
            ip = "2001:db8:%x::%x" % (n // 256, n % 256 + 1)
        else:
            ip = "198.18.%d.%d" % (n // 250, n % 250 + 1)
        since = now - (n * 7) % 500
        bantime = 600 + (n * 997) % 86_000
        ban(sshd, ip, since, bantime, 1 + n % 5)
    ban(sshd, "203.0.113.1", now - 3600, -1, 3)
    ban(sshd, "203.0.113.2", now - 7200, 600, 1)
    ban(sshd, "203.0.113.3", now - 90_000, 86_400, 2)
    for n in range(3):
        ban(apache, "203.0.113.%d" % (10 + n), now - 10, 3600, 1)
    db._db.commit()
    for entry in written:
        print(json.dumps(entry))


if __name__ == "__main__":
    main()

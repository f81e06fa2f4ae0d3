"""A synthetic raw help-desk export: what a new organisation's tickets look like before cleaning.

Made from scratch with a seeded generator (no row comes from, or is derived from, any real
ticket set): e-mail bodies in English and German with greetings, signatures, legal
disclaimers, quoted replies that talk about *other* problems, HTML mail, mojibake, and
~50 teams whose sizes follow a steep power law (a few big queues, a long tail of small
ones, as real desks have). Teams share vocabulary with their neighbours so routing is not
trivially separable, and requesters come back: their earlier tickets say something.

    .venv/bin/python bench/raw_export.py --rows 6000 --out /tmp/raw_export   # CSV + mapping

Columns: ``Ticket No``, ``Received``, ``Source``, ``From``, ``Customer Level``, ``Service``,
``Subject``, ``Message``, ``Assigned Group``, ``Ticket Type`` (incident, service request,
change, problem). The mapping written beside it is the four-line kind a new customer writes.
"""

from __future__ import annotations

import argparse
import csv
import random
from datetime import datetime, timedelta, timezone
from pathlib import Path

SEED = 12
N_TEAMS = 50

# topic vocabulary: (English words, German words); teams draw 2 topics (one own, one shared)
TOPICS = [
    (["vpn", "tunnel", "remote access", "gateway"], ["VPN", "Fernzugriff", "Verbindung", "Tunnel"]),
    (["printer", "toner", "paper jam", "print queue"], ["Drucker", "Toner", "Papierstau", "Druckauftrag"]),
    (
        ["outlook", "mailbox", "calendar", "shared inbox"],
        ["Outlook", "Postfach", "Kalender", "Sammelpostfach"],
    ),
    (["password", "locked account", "login", "mfa"], ["Passwort", "Konto gesperrt", "Anmeldung", "MFA"]),
    (["laptop", "docking station", "screen", "battery"], ["Laptop", "Dockingstation", "Bildschirm", "Akku"]),
    (
        ["sap", "purchase order", "invoice posting", "cost centre"],
        ["SAP", "Bestellung", "Rechnungsbuchung", "Kostenstelle"],
    ),
    (
        ["payroll", "payslip", "overtime", "salary"],
        ["Gehaltsabrechnung", "Lohnzettel", "Überstunden", "Gehalt"],
    ),
    (
        ["teams meeting", "headset", "video call", "microphone"],
        ["Teams-Besprechung", "Headset", "Videoanruf", "Mikrofon"],
    ),
    (
        ["sharepoint", "onedrive", "sync", "document library"],
        ["SharePoint", "OneDrive", "Synchronisierung", "Dokumentbibliothek"],
    ),
    (["firewall", "port", "proxy", "certificate"], ["Firewall", "Port", "Proxy", "Zertifikat"]),
    (["database", "sql", "backup", "restore"], ["Datenbank", "SQL", "Sicherung", "Wiederherstellung"]),
    (["crm", "salesforce", "lead", "opportunity"], ["CRM", "Salesforce", "Lead", "Verkaufschance"]),
    (
        ["phone", "desk phone", "voicemail", "extension"],
        ["Telefon", "Tischtelefon", "Mailbox-Ansage", "Durchwahl"],
    ),
    (["badge", "door access", "visitor", "parking"], ["Ausweis", "Türzugang", "Besucher", "Parkplatz"]),
    (["software install", "licence", "visio", "adobe"], ["Softwareinstallation", "Lizenz", "Visio", "Adobe"]),
    (["server", "disk space", "cpu", "reboot"], ["Server", "Speicherplatz", "CPU", "Neustart"]),
    (["wifi", "access point", "guest network", "signal"], ["WLAN", "Access Point", "Gastnetz", "Signal"]),
    (
        ["phishing", "virus", "suspicious link", "malware"],
        ["Phishing", "Virus", "verdächtiger Link", "Schadsoftware"],
    ),
    (
        ["new starter", "onboarding", "leaver", "account creation"],
        ["Neueinstellung", "Onboarding", "Austritt", "Kontoanlage"],
    ),
    (["report", "dashboard", "power bi", "data export"], ["Bericht", "Dashboard", "Power BI", "Datenexport"]),
    (["website", "cms", "web form", "landing page"], ["Webseite", "CMS", "Webformular", "Zielseite"]),
    (["mobile", "iphone", "intune", "app store"], ["Handy", "iPhone", "Intune", "App Store"]),
    (
        ["warehouse scanner", "label printer", "barcode", "handheld"],
        ["Lagerscanner", "Etikettendrucker", "Barcode", "Handscanner"],
    ),
    (["expenses", "travel booking", "concur", "receipt"], ["Spesen", "Reisebuchung", "Concur", "Beleg"]),
    (
        ["contract", "docusign", "signature request", "legal review"],
        ["Vertrag", "DocuSign", "Signaturanfrage", "Rechtsprüfung"],
    ),
]
TYPES = [("incident", 0.55), ("service request", 0.33), ("change", 0.07), ("problem", 0.05)]
TYPE_PHRASES = {
    "incident": (
        [
            "{x} is not working since this morning",
            "I get an error with {x}",
            "{x} stopped working",
            "{x} keeps failing",
        ],
        ["{x} funktioniert seit heute Morgen nicht", "Fehlermeldung bei {x}", "{x} geht nicht mehr"],
    ),
    "service request": (
        ["could you please set up {x} for me", "I need access to {x}", "please order {x}", "request for {x}"],
        ["bitte richten Sie {x} für mich ein", "ich benötige Zugriff auf {x}", "bitte bestellen: {x}"],
    ),
    "change": (
        [
            "change request: update {x} in the next maintenance window",
            "RFC for {x}, rollback plan attached",
            "please schedule the {x} upgrade for the change board",
        ],
        ["Änderungsantrag: {x} im nächsten Wartungsfenster anpassen", "RFC für {x}, Rückfallplan anbei"],
    ),
    "problem": (
        [
            "recurring issue with {x}, please find the root cause",
            "{x} fails again for many users, several incidents linked",
            "known error candidate: {x}",
        ],
        [
            "wiederkehrender Fehler bei {x}, bitte Ursache finden",
            "{x} fällt erneut aus, mehrere Störungen verknüpft",
        ],
    ),
}
# Real type labels are not in the wording: a fault is reported as a request ("could you please
# fix ..."), a request as a fault, many tickets say only what they are about, and agents pick
# the type by habit. Without this the type head is trivially 1.0 for every variant.
NEUTRAL_PHRASES = (
    ["help with {x}", "question about {x}", "{x} - please have a look", "ticket regarding {x}"],
    ["Hilfe bei {x}", "Frage zu {x}", "{x} - bitte prüfen", "Anliegen zu {x}"],
)
TYPE_NEUTRAL = 0.25  # share of tickets written in words of no type
TYPE_BLUR = 0.15  # share written in the words of another type
TYPE_LABEL_NOISE = 0.05  # share whose recorded type is an agent's arbitrary pick


def type_wording(rng: random.Random, kind: str, german: bool) -> str:
    """The sentence template a ticket of this type is written with (often not its type's)."""
    r = rng.random()
    if r < TYPE_NEUTRAL:
        return rng.choice(NEUTRAL_PHRASES[1 if german else 0])
    if r < TYPE_NEUTRAL + TYPE_BLUR:
        kind = rng.choice([k for k, _ in TYPES if k != kind])
    return rng.choice(TYPE_PHRASES[kind][1 if german else 0])


GREET = (
    ["Hi team,", "Hello,", "Dear IT Support,", "Good morning,", "Hi all"],
    ["Hallo zusammen,", "Sehr geehrte Damen und Herren,", "Guten Morgen,", "Hallo IT,"],
)
CLOSE = (
    ["Kind regards,", "Best regards,", "Thanks,", "Cheers,"],
    ["Mit freundlichen Grüßen", "Viele Grüße", "Danke und Gruß,", "Beste Grüße"],
)
DISCLAIMER = (
    "This e-mail and any attachments are confidential and intended solely for the addressee. "
    "If you have received it in error please notify the sender and delete it. Any views "
    "expressed are those of the author and not necessarily of Northwind Holdings GmbH.",
    "Diese E-Mail enthält vertrauliche Informationen. Wenn Sie nicht der richtige Adressat sind, "
    "informieren Sie bitte sofort den Absender und vernichten Sie diese Mail. Northwind Holdings "
    "GmbH, Sitz Hamburg, Amtsgericht Hamburg HRB 12345, Geschäftsführer: M. Beispiel.",
)
FIRST = [
    "Anna",
    "Jonas",
    "Lea",
    "Lukas",
    "Mia",
    "Felix",
    "Sophie",
    "Paul",
    "Emma",
    "Ben",
    "Olivia",
    "Noah",
    "Grace",
    "Liam",
    "Amelia",
    "Jürgen",
    "Sören",
    "Zoë",
    "Björn",
    "Chloé",
]
LAST = [
    "Müller",
    "Schmidt",
    "Schneider",
    "Fischer",
    "Weber",
    "Smith",
    "Jones",
    "Taylor",
    "Brown",
    "Wilson",
    "Hoffmann",
    "Koch",
    "Bauer",
    "Richter",
    "O'Brien",
    "Nguyen",
]
SERVICES = [
    "Email",
    "Network",
    "ERP",
    "Workplace",
    "Telephony",
    "Collaboration",
    "HR",
    "Facilities",
    "Security",
    "Data",
    "Web",
    "Logistics",
]


def make_teams(rng: random.Random) -> list[dict]:
    """~50 teams with power-law sizes; each owns one topic and leans on a neighbouring one."""
    teams = []
    for i in range(N_TEAMS):
        own = i % len(TOPICS)
        shared = (own + 1 + rng.randrange(3)) % len(TOPICS)
        teams.append(
            {
                "name": f"{['L1', 'L2', 'Ops', 'Apps', 'Infra'][i % 5]}-{TOPICS[own][0][0].title()}-{i:02d}",
                "topics": (own, shared),
                "weight": 1.0 / (i + 1) ** 1.1,
                "service": SERVICES[own % len(SERVICES)],
                "signature": rng.random(),
            }
        )
    return teams


def mojibake(text: str) -> str:
    return text.encode("utf-8").decode("cp1252", errors="replace")


def html(text: str) -> str:
    paras = "".join(f"<p>{p.replace(chr(10), '<br>')}</p>" for p in text.split("\n\n"))
    return (
        f'<html><head><style>p {{margin:0}}</style></head><body><div dir="ltr">{paras}'
        f"<div>&nbsp;</div></div></body></html>"
    )


def ticket(rng: random.Random, teams: list[dict], person: dict, when: datetime, i: int) -> dict:
    team = rng.choices(teams, [t["weight"] for t in teams])[0]
    if person["habit"] is not None and rng.random() < 0.35:
        team = person["habit"]  # people come back with the same kind of problem
    person["habit"] = team
    kind = rng.choices([k for k, _ in TYPES], [w for _, w in TYPES])[0]
    de = person["german"]
    topic = team["topics"][0] if rng.random() < 0.7 else team["topics"][1]
    words = TOPICS[topic][1 if de else 0]
    x = rng.choice(words)
    core = type_wording(rng, kind, de).format(x=x)
    if rng.random() < TYPE_LABEL_NOISE:
        kind = rng.choice([k for k, _ in TYPES])
    detail = (
        rng.choice(words)
        if rng.random() < 0.6
        else rng.choice(TOPICS[rng.randrange(len(TOPICS))][1 if de else 0])
    )
    extra = (
        (f"Auch {detail} ist betroffen." if de else f"It also affects {detail}.")
        if rng.random() < 0.5
        else ""
    )
    body_lines = [rng.choice(GREET[1 if de else 0]), "", f"{core[0].upper()}{core[1:]}. {extra}".strip()]
    signature = [
        rng.choice(CLOSE[1 if de else 0]),
        person["name"],
        person["dept"],
        f"Tel. +49 40 {rng.randint(1000000, 9999999)}"
        if de
        else f"Phone +44 20 {rng.randint(1000, 9999)} {rng.randint(1000, 9999)}",
    ]
    body_lines += ["", *signature]
    if rng.random() < 0.45:
        body_lines += ["", DISCLAIMER[1 if de else 0]]
    if rng.random() < 0.3:  # a quoted reply about some other problem
        other = rng.choice(TOPICS)[1 if de else 0]
        hdr = (
            f"Am {when - timedelta(days=3):%d.%m.%Y um %H:%M} schrieb IT Service Desk <it@northwind.example>:"
            if de
            else f"On {when - timedelta(days=3):%a, %d %b %Y at %H:%M}, IT Service Desk <it@northwind.example> wrote:"
        )
        body_lines += [
            "",
            hdr,
            f"> {rng.choice(other)} {rng.choice(other)} – ticket resolved.",
            f"> {rng.choice(other)}",
        ]
    body = "\n".join(body_lines)
    subject = rng.choice(["AW: ", "WG: ", "RE: ", "FW: ", ""]) + (x if rng.random() < 0.6 else core[:60])
    if rng.random() < 0.2:
        body = html(body)
    if rng.random() < 0.08:
        body, subject = mojibake(body), mojibake(subject)
    if rng.random() < 0.1:
        body = body.replace("\n", "\r\n")
    return {
        "Ticket No": f"NW-{100000 + i}",
        "Received": when.isoformat(timespec="seconds"),
        "Source": rng.choices(["email", "portal", "phone", "chat"], [0.6, 0.25, 0.1, 0.05])[0],
        "From": person["email"],
        "Customer Level": person["tier"],
        "Service": team["service"] if rng.random() < 0.8 else rng.choice(SERVICES),
        "Subject": subject,
        "Message": body,
        "Assigned Group": team["name"],
        "Ticket Type": kind,
    }


def generate(rows: int = 6000, seed: int = SEED) -> list[dict]:
    rng = random.Random(seed)
    teams = make_teams(rng)
    people = []
    for p in range(max(20, rows // 6)):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        people.append(
            {
                "name": f"{first} {last}",
                "email": f"{first}.{last}{p}@northwind.example".lower(),
                "dept": rng.choice(["Finance", "Einkauf", "Logistik", "Sales", "HR", "Legal"]),
                "german": rng.random() < 0.45,
                "habit": None,
                "tier": rng.choices(["standard", "gold", "vip"], [0.8, 0.15, 0.05])[0],
            }
        )
    start = datetime(2025, 1, 6, 8, tzinfo=timezone.utc)
    times = sorted(start + timedelta(minutes=rng.randint(0, 60 * 24 * 300)) for _ in range(rows))
    weights = [1.0 / (k + 1) ** 0.8 for k in range(len(people))]  # some people write a lot
    return [ticket(rng, teams, rng.choices(people, weights)[0], when, i) for i, when in enumerate(times)]


MAPPING = """text: {subject: Subject, body: Message}
metadata: {channel: Source, customer_tier: Customer Level, affected_service: Service, requester: From, created_at: Received, id: Ticket No}
labels: {team: {column: Assigned Group}, type: {column: Ticket Type}}
min_class_count: 5
"""


def write(folder: Path, rows: int = 6000, seed: int = SEED) -> tuple[Path, Path]:
    """Write ``raw_export.csv`` and ``mapping.yaml`` into ``folder``; returns both paths."""
    folder.mkdir(parents=True, exist_ok=True)
    data = folder / "raw_export.csv"
    tickets = generate(rows, seed)
    with open(data, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(tickets[0]))
        writer.writeheader()
        writer.writerows(tickets)
    mapping = folder / "mapping.yaml"
    mapping.write_text(MAPPING, encoding="utf-8")
    return data, mapping


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=6000)
    ap.add_argument("--seed", type=int, default=SEED)
    ap.add_argument("--out", type=Path, default=Path("/tmp/raw_export"))
    args = ap.parse_args(argv)
    data, mapping = write(args.out, args.rows, args.seed)
    print(f"wrote {data} and {mapping}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

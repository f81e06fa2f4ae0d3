"""Generate the synthetic demo help-desk export ``data/demo/tickets.csv``.

Why this exists: ``triage train`` and the service must work on a fresh machine
with nothing but this repository, so the project ships its own small corpus.
The tickets are invented from templates (one scenario per team, category and
ticket kind, with varied slots) and then roughened the way real exports are:
mojibake, quoted e-mail history, signatures, odd whitespace, a few missing
labels and some deliberately ambiguous routing.  Column names are *not* our
internal field names; ``mapping.yaml`` maps them.

Deterministic: the same seed always writes the same bytes.  Stdlib only.

    python data/demo/generate.py            # writes data/demo/tickets.csv
    python data/demo/generate.py --rows 600 --seed 20240611 --out other.csv
"""

from __future__ import annotations

import argparse
import csv
import random
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

SEED = 20240611
ROWS = 2000
HERE = Path(__file__).resolve().parent

SD, NET, IAM, EUC, BA, COL, HR = (
    "Service Desk",
    "Network",
    "Identity & Access",
    "End-User Computing",
    "Business Applications",
    "Collaboration",
    "HR Systems",
)
INC, REQ, QUE = "incident", "service_request", "question"
CHG, PRB = "change", "problem"  # the ITIL types a change board and problem management record

# --------------------------------------------------------------------------
# Slot pools
# --------------------------------------------------------------------------
FIRST = [
    "Jane",
    "Tom",
    "Priya",
    "Mohammed",
    "Sarah",
    "David",
    "Emma",
    "Liam",
    "Chloé",
    "José",
    "Zoë",
    "Aisha",
    "Björn",
    "Fiona",
    "Raj",
    "Hannah",
    "Gareth",
    "Olga",
    "Kwame",
    "Siobhán",
    "Marco",
    "Lucy",
    "Daniel",
    "Mei",
    "Ana",
    "Peter",
    "Rachel",
    "François",
    "Nadia",
    "Owen",
    "Grace",
    "Tariq",
    "Ellie",
    "Søren",
    "Yusuf",
    "Megan",
]
LAST = [
    "Doe",
    "Smith",
    "Patel",
    "Khan",
    "Jones",
    "Williams",
    "Brown",
    "Taylor",
    "Martin",
    "García",
    "Clarke",
    "Hughes",
    "Larsson",
    "Murray",
    "Sharma",
    "Evans",
    "Davies",
    "Ivanova",
    "Mensah",
    "O'Neill",
    "Rossi",
    "Wright",
    "Walker",
    "Chen",
    "Muñoz",
    "Müller",
    "Green",
    "Dubois",
    "Ali",
    "Roberts",
    "Thompson",
    "Hussain",
    "Wood",
]
DEPTS = [
    "Finance",
    "Sales",
    "Marketing",
    "Legal",
    "Procurement",
    "Operations",
    "HR",
    "Customer Services",
    "Logistics",
    "Facilities",
    "Engineering",
    "Accounts Payable",
]
SITES = [
    "Leeds",
    "London HQ",
    "Manchester",
    "Bristol warehouse",
    "Dublin",
    "Glasgow",
    "Birmingham",
    "the Reading office",
]
FLOORS = ["2nd floor", "3rd floor", "4th floor", "ground floor", "mezzanine", "Building B"]
ROOMS = [
    "Boardroom 1",
    "meeting room 3.04",
    "the Thames room",
    "MR-2.11",
    "the training room",
    "Pennine suite",
]
LAPTOPS = [
    "Dell Latitude 7420",
    "Lenovo ThinkPad T14",
    "HP EliteBook 840 G8",
    "Surface Pro 8",
    "Dell Latitude 5520",
    "ThinkPad X1 Carbon",
    "MacBook Pro 14",
]
ASSETS = ["LT-{:05d}", "ACME-LT{:04d}", "PC{:06d}"]
PRINTERS = [
    "PRN-LDS-3F-02",
    "PRN-LON-4F-01",
    "PRN-MAN-GF-03",
    "HP LaserJet M607",
    "Ricoh IM C3000 by the kitchen",
    "Canon iR-ADV C5535",
    "the big printer near reception",
]
MONITORS = ["Dell P2422H", "two Dell U2720Q", 'LG 27" monitor', "Samsung ultrawide"]
DOCKS = ["Dell WD19 dock", "Lenovo USB-C dock", "HP Thunderbolt dock G4", "docking station"]
SOFTWARE = [
    "Adobe Acrobat Pro",
    "Microsoft Visio",
    "Power BI Desktop",
    "Tableau",
    "Notepad++",
    "Python 3.11",
    "MS Project",
    "SnagIt",
    "7-Zip",
    "Zoom client",
    "AutoCAD LT",
    "SPSS",
]
VPN_ERR = [
    "Login failed",
    "The VPN connection was terminated by the server",
    "Certificate validation failure",
    "Gateway unreachable",
    "error 809",
    "Connection attempt has failed",
    "Authentication failed (code 0x1A)",
]
OUTLOOK_ERR = [
    "Cannot start Microsoft Outlook. Cannot open the set of folders",
    "0x8004010F",
    "The operation failed. An object could not be found",
    "Outlook is trying to connect",
    "We couldn't open your default e-mail folders",
    "0x800CCC0E",
]
TEAMS_ERR = [
    "We couldn't connect the call",
    "caa7000a",
    "Something went wrong",
    "We can't find your microphone",
    "error 80080300",
]
SP_SITES = [
    "Finance Team Site",
    "Projects - Apollo",
    "HR Policies",
    "Sales Hub",
    "Operations Portal",
    "Legal Contracts",
    "Board Papers",
    "Marketing Assets",
]
SP_ERR = [
    "0x8007016A",
    "Sync pending",
    "Access denied",
    "0x80070005",
    "files can't be synced because of a name conflict",
    "processing changes",
]
TCODES = ["ME21N", "FB60", "VA01", "MIGO", "F110", "ME23N", "FBL1N", "MM03", "CO03"]
ERP_ERR = [
    "No authorization for transaction {tcode}",
    "Runtime error TIME_OUT",
    "Message no. M7021",
    "Document is locked by user {user}",
    "Error in posting period",
    "RFC connection failed",
    "Field is not ready for input",
]
SSO_ERR = ["AADSTS50076", "AADSTS50126", "AADSTS53003", "AADSTS700016"]
APPS = ["Salesforce", "Workday", "Concur", "ServiceNow", "DocuSign", "Jira", "Confluence"]
PHONES = ["iPhone 13", "Samsung Galaxy S22", "new iPhone", "Pixel 7", "work phone"]
MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]
PROJECTS = [
    "Apollo",
    "Phoenix",
    "Warehouse Automation",
    "Brexit Customs",
    "Net Zero",
    "CRM Migration",
    "Hermes",
]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"]
DOMAIN = "acme.example"

# --------------------------------------------------------------------------
# Scenarios: (team, category, kind, service, titles, bodies[, alt_team, p_alt])
# Bodies are first person; {slots} are filled from the pools above.
# --------------------------------------------------------------------------
S = []


def scenario(
    team, category, kind, service, titles, bodies, alt=None, p_alt=0.0, weight=1.0, alt_kind=None, p_kind=0.0
):
    """``alt``/``alt_kind``: the team or kind agents sometimes record instead."""
    S.append(
        dict(
            team=team,
            category=category,
            kind=kind,
            service=service,
            titles=titles,
            bodies=bodies,
            alt=alt,
            p_alt=p_alt,
            weight=weight,
            alt_kind=alt_kind,
            p_kind=p_kind,
        )
    )


# ---- Service Desk ---------------------------------------------------------
scenario(
    SD,
    "Access",
    REQ,
    "Identity",
    [
        "Password reset",
        "Forgot my password",
        "Password expired - can't log in",
        "Reset password please",
        "need password reset for {app}",
    ],
    [
        "I've forgotten my Windows password after coming back from leave and the self-service "
        "reset page says my security questions aren't set up. Can someone reset it for me?",
        "My password expired this morning and when I try to change it at the login screen it "
        "says the new one doesn't meet the complexity requirements, even though it's 14 characters. "
        "Could you reset it and send me a temporary one?",
        "Could I get my password reset? I changed it on Friday and have genuinely forgotten "
        "the new one. Username is {user}.",
        "Please reset the password for {app}. I tried the 'forgot password' link but the reset "
        "email never arrives.",
    ],
    weight=1.4,
    alt_kind=INC,
    p_kind=0.25,
)
scenario(
    SD,
    "Access",
    INC,
    "Identity",
    [
        "Account locked out",
        "Locked out of my account",
        "Keep getting locked out",
        "account locked again!!",
        "Can't log in - account locked",
    ],
    [
        "My account keeps getting locked out every 20 minutes or so. I reset my password on "
        "{day} and I think my phone still has the old one saved for e-mail.",
        "I'm locked out of my laptop. It says 'The referenced account is currently locked out "
        "and may not be logged on to'. I only tried twice.",
        "Account {user} is locked. I've been unlocked twice today already and it happens again "
        "as soon as I connect to the Wi-Fi.",
        "Tried logging in after the weekend and got locked out. Can you unlock me? I do know the "
        "password, I think caps lock was on.",
    ],
    weight=1.3,
    alt_kind=REQ,
    p_kind=0.15,
)
scenario(
    SD,
    "Security",
    INC,
    "Email",
    [
        "Suspicious email",
        "Phishing email received",
        "FW: Action required: verify your mailbox",
        "Possible phishing - clicked link",
        "Strange email from {colleague}",
    ],
    [
        "I received an email claiming to be from Microsoft asking me to verify my mailbox before "
        "it's deleted. The sender address is {rand_sender}. I haven't clicked anything, just "
        "reporting it.",
        "I think I've done something stupid. I clicked a link in an email about an unpaid "
        "invoice and entered my login details before I realised the page looked wrong. "
        "Please advise what I should do.",
        "Got an email from {colleague}'s account asking me to buy gift cards urgently. That's "
        "not like them at all, I think their account may be compromised.",
        "Several people in {dept} have had the same 'DocuSign - document waiting' email with a "
        "link to a non-company site. Forwarding one as an attachment.",
    ],
    weight=1.2,
)
scenario(
    SD,
    "Security",
    QUE,
    "Email",
    ["Is this email genuine?", "Is this legit?", "Query - email from {app}", "Safe to open this attachment?"],
    [
        "I've had an email from {app} saying my subscription needs renewing. Is this genuine or "
        "should I report it? I don't remember signing up.",
        "Quick question - a supplier sent a zip file with a password in the email body. Is it "
        "safe to open, or should I send it to you to check first?",
        "How do I report a phishing email? Is there a button in Outlook or do I forward it to someone?",
    ],
    alt_kind=INC,
    p_kind=0.2,
)
scenario(
    SD,
    "Email",
    QUE,
    "Email",
    [
        "How do I set up an out of office?",
        "Out of office question",
        "auto reply help",
        "Automatic replies - how?",
    ],
    [
        "I'm going on leave next week. How do I set up an automatic reply in Outlook so "
        "external people get a different message?",
        "How do I set an out of office from my phone? I'm already away and forgot to do it before I left.",
        "Is there a way to set an auto-reply that only starts on {day} and stops the following week?",
    ],
    alt=COL,
    p_alt=0.35,
    alt_kind=REQ,
    p_kind=0.15,
)
scenario(
    SD,
    "Hardware",
    REQ,
    "Laptop fleet",
    [
        "New headset required",
        "Request: replacement charger",
        "Need a mouse and keyboard",
        "Request for laptop bag",
        "Replacement USB-C charger please",
    ],
    [
        "My headset's microphone has stopped working and people can't hear me on calls. Could "
        "I get a replacement? I'm based in {site}.",
        "I left my laptop charger in a hotel. Can I please get a replacement for my {laptop}? "
        "Cost centre is CC-{num4}.",
        "Could I please have a wired mouse and keyboard for my desk on the {floor} at {site}? "
        "The wireless ones keep dropping out.",
        "Starting hybrid working and need a second charger for home. Manager {colleague} has approved.",
    ],
    alt=EUC,
    p_alt=0.3,
)
scenario(
    SD,
    "Software",
    QUE,
    "Laptop fleet",
    [
        "Can I use my personal laptop?",
        "Question about software",
        "Is {software} allowed?",
        "How do I get {software}?",
    ],
    [
        "Am I allowed to install {software} myself or does it need to go through IT? I couldn't "
        "find it in Company Portal.",
        "Can I work from my personal laptop while mine is being repaired? Just need email and Teams really.",
        "Which version of {software} are we licensed for? A client has sent me a file and I'm "
        "not sure mine will open it.",
    ],
    alt=EUC,
    p_alt=0.25,
    alt_kind=REQ,
    p_kind=0.25,
)
scenario(
    SD,
    "Access",
    QUE,
    "Identity",
    ["How do I change my password?", "Password change on phone", "Password policy question"],
    [
        "How often do we have to change our passwords now? I thought the policy changed.",
        "I changed my password on my laptop, how do I update it on my phone so email keeps working?",
        "Where is the self-service password reset page? I want to register my mobile number "
        "before I go travelling.",
    ],
    alt_kind=REQ,
    p_kind=0.15,
)

# ---- Network --------------------------------------------------------------
scenario(
    NET,
    "Network",
    INC,
    "VPN",
    [
        "VPN not connecting",
        "Can't connect to VPN",
        "VPN error: {vpn_err}",
        "AnyConnect won't connect from home",
        "vpn down?",
    ],
    [
        "I can't connect to the VPN from home. AnyConnect shows '{vpn_err}'. My internet is "
        "working fine otherwise.",
        "Since this morning the VPN fails with '{vpn_err}'. I've restarted the laptop and the "
        "router. Laptop is a {laptop}, asset {asset}.",
        "Working from a hotel in {site} and the VPN just spins at 'Contacting vpn.{domain}' then "
        "times out. Hotel Wi-Fi needed a login page which I've done.",
        "Cisco AnyConnect gives '{vpn_err}' as soon as I enter my password. I can get into "
        "Outlook on the web so the password is right.",
    ],
    weight=1.5,
)
scenario(
    NET,
    "Network",
    INC,
    "VPN",
    ["VPN keeps disconnecting", "VPN drops every few minutes", "Unstable VPN connection"],
    [
        "The VPN keeps disconnecting every 5-10 minutes, which drops me out of Teams calls and "
        "the ERP. It reconnects by itself but it's very disruptive.",
        "Since {day} my VPN drops roughly every quarter of an hour. Home broadband is fibre and "
        "speed tests are fine.",
        "VPN connects, but after a few minutes network drives disappear and I have to reconnect.",
    ],
)
scenario(
    NET,
    "Network",
    INC,
    "Wi-Fi",
    [
        "Wi-Fi down on {floor}",
        "No Wi-Fi in {room}",
        "WiFi not working - {site}",
        "Corporate wireless dropping",
        "Can't connect to ACME-Corp wifi",
    ],
    [
        "Nobody on the {floor} at {site} can get onto the ACME-Corp Wi-Fi. It shows the network "
        "but says 'Can't connect to this network'.",
        "Wi-Fi in {room} is extremely slow or drops completely. We have a client workshop in "
        "there this afternoon.",
        "My laptop won't connect to the corporate wireless since the weekend, but my phone "
        "connects to the guest network fine.",
        "The wireless keeps dropping every few minutes on the {floor}. Wired desks seem OK.",
    ],
    weight=1.3,
)
scenario(
    NET,
    "Network",
    INC,
    "Wi-Fi",
    ["Internet very slow at {site}", "Network slow", "Network drives unavailable", "No network on desk port"],
    [
        "Everything is really slow at {site} today: websites, shared drives, the ERP. Started around {time}.",
        "The network port at my desk on the {floor} doesn't seem to work. The light on the "
        "dock doesn't come on and I get 'Unidentified network'.",
        "Can't reach the S: and T: drives from {site}. Other people nearby have the same issue.",
    ],
)
scenario(
    NET,
    "Network",
    REQ,
    "VPN",
    [
        "VPN access for contractor",
        "Request: remote access for {colleague}",
        "New VPN account required",
        "Enable VPN for new starter",
    ],
    [
        "Please can you enable VPN access for our contractor {colleague} who starts on {day}? "
        "They'll be working remotely on the {project} project.",
        "I need remote access set up for a new team member in {dept}. Their account is "
        "{user}; manager approval attached.",
        "Could my VPN profile be changed to the full-tunnel group? I need to reach the "
        "laboratory systems in {site}.",
    ],
)
scenario(
    NET,
    "Network",
    REQ,
    "Wi-Fi",
    ["Guest Wi-Fi for visitors", "Guest wireless access request", "Wi-Fi for event in {room}"],
    [
        "We have 12 visitors from a supplier on {day} in {room}. Can we get guest Wi-Fi vouchers "
        "for the day?",
        "Could you set up guest Wi-Fi access for an external auditor for two weeks from {day}?",
        "Please can we have additional Wi-Fi capacity in {room} for a 60-person town hall next month?",
    ],
)
scenario(
    NET,
    "Network",
    QUE,
    "VPN",
    [
        "Do I need VPN for SharePoint?",
        "Question re VPN",
        "Is there a network outage?",
        "Known issue with the VPN today?",
    ],
    [
        "Do I need to be on the VPN to use SharePoint and Teams, or only for the network drives?",
        "Is there a known problem with the VPN this morning? A few of us in {dept} are having "
        "trouble, just checking before I raise a proper ticket.",
        "Can I use the VPN from abroad? I'm working from Spain for two weeks in {month}.",
    ],
    alt=SD,
    p_alt=0.3,
    alt_kind=INC,
    p_kind=0.2,
)

# ---- Identity & Access ----------------------------------------------------
scenario(
    IAM,
    "Access",
    INC,
    "Identity",
    [
        "MFA not working",
        "Authenticator app not prompting",
        "New phone - MFA",
        "Can't approve sign-in request",
        "Multi-factor authentication issue",
    ],
    [
        "I've got a new phone ({phone}) and the Microsoft Authenticator app didn't transfer. Now I can't approve "
        "sign-ins and I'm stuck at the MFA screen.",
        "The Authenticator app isn't receiving push notifications. The sign-in page says "
        "'We've sent a notification to your mobile device' but nothing appears.",
        "MFA text codes aren't arriving on my phone. The number registered may be my old one.",
        "Getting error {sso_err} when signing in from home. It worked last week.",
    ],
    weight=1.4,
    alt_kind=REQ,
    p_kind=0.15,
)
scenario(
    IAM,
    "Access",
    INC,
    "Identity",
    ["Can't sign in to {app}", "SSO error on {app}", "{app} says access denied", "Single sign-on failing"],
    [
        "When I open {app} I get '{sso_err}: Your sign-in was blocked' after the Microsoft login "
        "page. Colleagues can get in.",
        "{app} sends me round in a loop between the login page and the app. Cleared cookies, "
        "tried Edge and Chrome.",
        "I've moved to {dept} and now {app} says I'm not assigned to the application.",
    ],
)
scenario(
    IAM,
    "Access",
    REQ,
    "Identity",
    [
        "Access to shared drive",
        "Folder permissions request",
        "Need access to {dept} share",
        "Request: read/write access to S:\\{dept}",
        "Access request - network folder",
    ],
    [
        "Please could I be given read/write access to S:\\{dept}\\Reports? My manager "
        "{colleague} is copied in to approve.",
        "I've joined the {dept} team and need access to their shared folder and distribution list.",
        "Can {colleague} be given read-only access to the \\\\fs01\\{dept} share? They're covering "
        "while I'm on leave.",
    ],
    weight=1.3,
)
scenario(
    IAM,
    "Access",
    REQ,
    "Identity",
    [
        "Add to security group",
        "Add user to distribution list",
        "Group membership change",
        "Remove access for {colleague}",
    ],
    [
        "Please add {colleague} to the SG-{dept}-Users group so they can see the team folders.",
        "Please remove {colleague} from the {dept} distribution list, they moved teams last month.",
        "I need adding to the 'All {site} staff' distribution list, I don't get the site emails.",
    ],
    alt_kind=INC,
    p_kind=0.15,
)
scenario(
    IAM,
    "Access",
    REQ,
    "Identity",
    [
        "New starter account",
        "New user account - {colleague}",
        "Account creation for contractor",
        "Starter on {day}: accounts needed",
    ],
    [
        "We have a new starter, {colleague}, joining {dept} on {day}. They need a network account, "
        "email and the standard {dept} access. Line manager is me.",
        "Please create an account for a contractor joining for 3 months from {day}. They'll need "
        "email and access to {app}.",
        "New graduate starting in {dept} on {day}. Can you mirror the access of {user2}?",
    ],
    alt=HR,
    p_alt=0.12,
)
scenario(
    IAM,
    "Access",
    REQ,
    "Identity",
    [
        "Leaver - disable account",
        "Leaver notification: {colleague}",
        "Account removal",
        "Offboarding {colleague}",
    ],
    [
        "{colleague} from {dept} leaves on {day}. Please disable their account at 5pm that day "
        "and give their manager access to the mailbox and OneDrive.",
        "Contractor {colleague}'s engagement ended yesterday. Please remove all access today.",
        "Please set up leaver process for {colleague}: forward email to me for 30 days, then delete.",
    ],
    alt=HR,
    p_alt=0.15,
)
scenario(
    IAM,
    "Email",
    REQ,
    "Email",
    [
        "Shared mailbox access",
        "Access to {mailbox} mailbox",
        "Add me to shared mailbox",
        "Need send-as rights for {mailbox}",
    ],
    [
        "Please give me full access and send-as on the {mailbox}@{domain} shared mailbox. "
        "{colleague} has approved.",
        "I've joined the team and can't see the {mailbox} shared mailbox in Outlook. Could I be added?",
        "Could {colleague} have access to the {mailbox} inbox while I'm away?",
    ],
    alt=COL,
    p_alt=0.4,
)
scenario(
    IAM,
    "Access",
    QUE,
    "Identity",
    ["Why do I keep getting MFA prompts?", "Question about MFA", "Who approves access?"],
    [
        "Why am I being asked for MFA every time I open Outlook? It didn't used to do this.",
        "Who needs to approve access to the {dept} folders? The owner has left the company.",
        "Can I use a hardware key instead of the phone app for MFA? I don't have a work phone.",
    ],
    alt_kind=INC,
    p_kind=0.2,
)

# ---- End-User Computing ---------------------------------------------------
scenario(
    EUC,
    "Hardware",
    INC,
    "Laptop fleet",
    [
        "Laptop very slow",
        "PC running slow",
        "Laptop freezing",
        "slow laptop - {asset}",
        "Computer takes ages to start",
    ],
    [
        "My {laptop} has become really slow over the past week. Takes 10 minutes to boot and "
        "Excel freezes constantly. Task manager shows disk at 100%.",
        "Laptop {asset} keeps freezing for a minute at a time, especially on Teams calls. The "
        "fan is going constantly.",
        "It takes forever to log in in the morning and then Outlook and the browser are very "
        "slow. I restart every day.",
        "My laptop is unbearably slow since the last update. Even opening File Explorer takes ages.",
    ],
    weight=1.4,
)
scenario(
    EUC,
    "Hardware",
    INC,
    "Laptop fleet",
    [
        "Laptop won't turn on",
        "BitLocker recovery key",
        "Blue screen on startup",
        "Laptop stuck on boot",
        "Dead laptop",
    ],
    [
        "My laptop is asking for a BitLocker recovery key after a BIOS update. Device is {asset}.",
        "My {laptop} won't power on at all. Charging light comes on but nothing on screen.",
        "Getting a blue screen with 'CRITICAL_PROCESS_DIED' every time it starts up.",
        "Laptop dropped off my desk and now the screen is cracked and flickering. Asset {asset}.",
    ],
    weight=1.2,
)
scenario(
    EUC,
    "Hardware",
    INC,
    "Laptop fleet",
    [
        "Monitors not working with dock",
        "Docking station issue",
        "Second screen not detected",
        "Dock not charging laptop",
        "No display on external monitors",
    ],
    [
        "When I plug into the {dock} on the {floor} neither of the {monitor} screens come on. "
        "The laptop screen is fine.",
        "My docking station stopped charging the laptop and USB devices only work intermittently.",
        "Only one of my two monitors is detected through the dock since {day}. Tried different cables.",
        "Hot desk {num3} on the {floor}: dock doesn't work at all, keyboard and screens dead.",
    ],
    weight=1.2,
)
scenario(
    EUC,
    "Hardware",
    INC,
    "Printing",
    ["Printer not working", "Printer jammed", "Can't print", "{printer} offline", "Paper jam on {printer}"],
    [
        "The {printer} on the {floor} says paper jam but there's no paper stuck anywhere that we can see.",
        "{printer} shows as offline for everyone on our floor. Power cycled it already.",
        "When I print, the job disappears from the queue but nothing comes out of {printer}.",
        "Printer is printing blank pages / streaks on everything. Toner was replaced last week.",
    ],
    alt=SD,
    p_alt=0.15,
    weight=1.3,
)
scenario(
    EUC,
    "Hardware",
    INC,
    "Printing",
    [
        "Can't add printer",
        "Printer driver error",
        "Print queue stuck",
        "Print jobs stuck in queue",
        "Secure print not releasing",
    ],
    [
        "I'm trying to add {printer} but I get 'Windows cannot connect to the printer. Operation "
        "failed with error 0x0000011b'.",
        "My print jobs are stuck in the queue with status 'Error - Printing'. Can't delete them either.",
        "Swiping my badge at the printer doesn't release my secure print jobs anymore.",
        "After moving to the {floor} I can't find the local printer in the list.",
    ],
    alt=SD,
    p_alt=0.15,
    alt_kind=REQ,
    p_kind=0.15,
)
scenario(
    EUC,
    "Software",
    REQ,
    "Laptop fleet",
    [
        "Software install request: {software}",
        "Please install {software}",
        "Request for {software} licence",
        "Install {software} on {asset}",
    ],
    [
        "Could you please install {software} on my laptop ({asset})? I need it for the {month} "
        "reporting. Budget holder is {colleague}.",
        "I need {software} for a project starting next week. It isn't available in Company Portal.",
        "Please can I have a licence for {software}? My previous one expired when I changed department.",
        "Requesting admin rights or an install of {software}, the installer asks for an admin password.",
    ],
    alt=SD,
    p_alt=0.15,
    weight=1.4,
    alt_kind=INC,
    p_kind=0.1,
)
scenario(
    EUC,
    "Hardware",
    REQ,
    "Laptop fleet",
    ["New laptop request", "Laptop refresh", "Replacement laptop needed", "Equipment for new starter"],
    [
        "My laptop is over 5 years old and struggling. Is it due for a refresh? Asset {asset}.",
        "We have a new starter in {dept} on {day} who needs a laptop, dock and two monitors.",
        "Please can we order a {laptop} for {colleague}? Approved by the department head.",
    ],
)
scenario(
    EUC,
    "Software",
    INC,
    "Laptop fleet",
    [
        "Windows update failing",
        "{software} crashes on launch",
        "Application keeps crashing",
        "Update stuck at 0%",
    ],
    [
        "Windows updates keep failing with error 0x800f0922 and it asks me to restart every day.",
        "{software} crashes as soon as I open it. Reinstalling from Company Portal didn't help.",
        "Company Portal says 'install failed' for {software} with error 0x87D1041C.",
        "Excel crashes whenever I open a file from the shared drive. Other files are fine.",
    ],
)
scenario(
    EUC,
    "Hardware",
    QUE,
    "Laptop fleet",
    ["When is my laptop due for replacement?", "Question: monitors for home", "Can I take my monitor home?"],
    [
        "Can I take a monitor home for hybrid working, and do I need to fill in a form?",
        "How do I find out when my laptop is due for refresh?",
        "Is it OK to use a USB-C dock I bought myself with my work laptop?",
    ],
    alt=SD,
    p_alt=0.3,
    alt_kind=REQ,
    p_kind=0.25,
)

# ---- Business Applications ------------------------------------------------
scenario(
    BA,
    "Business Applications",
    INC,
    "ERP",
    [
        "Can't log in to ERP",
        "SAP login error",
        "ERP password not accepted",
        "SAP GUI won't connect",
        "ERP access problem",
    ],
    [
        "When I log in to SAP I get 'Name or password is incorrect (repeat logon)' even after "
        "my password was reset.",
        "SAP GUI shows 'Partner not reached' when I try to connect to PRD. QA system works.",
        "ERP says my user is locked after too many failed attempts. Username {user}.",
        "Can't get into the ERP from home: SSO takes me to a blank page.",
    ],
    weight=1.3,
)
scenario(
    BA,
    "Business Applications",
    INC,
    "ERP",
    [
        "Error in {tcode}",
        "SAP error when posting",
        "ERP transaction {tcode} failing",
        "Can't post invoice in SAP",
        "Purchase order error",
    ],
    [
        "When I try to save in {tcode} I get '{erp_err}'. Need to post these before month end.",
        "Transaction {tcode} gives '{erp_err}' for all documents in company code 1000.",
        "Can't create a purchase order in ME21N: '{erp_err}'. Worked fine yesterday.",
        "Goods receipt in MIGO fails with '{erp_err}'. Warehouse is waiting on this.",
    ],
    weight=1.3,
)
scenario(
    BA,
    "Business Applications",
    INC,
    "ERP",
    ["ERP report wrong", "ERP very slow", "Report not running", "Month-end report incorrect"],
    [
        "The aged debtors report in the ERP is showing figures from last month. Data doesn't "
        "look like it refreshed overnight.",
        "The ERP is extremely slow today, every screen takes 30+ seconds.",
        "Background job for the {month} supplier payment run failed with '{erp_err}'.",
    ],
)
scenario(
    BA,
    "Business Applications",
    REQ,
    "ERP",
    [
        "ERP role request",
        "SAP access request for {tcode}",
        "Need approval rights in ERP",
        "Add ERP authorisation",
    ],
    [
        "Please add the AP clerk role to my ERP user so I can use {tcode}. Manager approval attached.",
        "{colleague} needs purchase order approval rights up to 10k in the ERP.",
        "Please copy the ERP roles from {user2} to my user as I'm taking over their duties.",
    ],
    alt=IAM,
    p_alt=0.3,
    alt_kind=INC,
    p_kind=0.1,
)
scenario(
    BA,
    "Business Applications",
    REQ,
    "ERP",
    [
        "New vendor field in ERP",
        "Change request: ERP report",
        "Expenses system change",
        "{app} configuration change",
    ],
    [
        "Could we add the cost centre column to the open PO report in the ERP?",
        "Please add a new approval step in {app} for expenses over 500 pounds.",
        "Need a new company code mapping for the Dublin entity in the ERP before {month}.",
    ],
)
scenario(
    BA,
    "Business Applications",
    QUE,
    "ERP",
    ["How do I run a report in ERP?", "ERP question", "Where is the vendor list in SAP?"],
    [
        "How do I export the list of open purchase orders from the ERP to Excel?",
        "Which transaction should I use to check an invoice's payment status?",
        "Is there a training guide for {tcode}? I'm new to the AP team.",
    ],
    alt=SD,
    p_alt=0.2,
    alt_kind=REQ,
    p_kind=0.2,
)
scenario(
    BA,
    "Business Applications",
    INC,
    "ERP",
    ["{app} not loading", "Problem with {app}", "{app} error"],
    [
        "{app} shows a spinning wheel and never loads the dashboard. Cleared cache already.",
        "{app} gives 'An unexpected error has occurred' when I submit. Happens every time.",
        "Records I saved in {app} yesterday have disappeared.",
    ],
)

# ---- Collaboration --------------------------------------------------------
scenario(
    COL,
    "Email",
    INC,
    "Email",
    [
        "Outlook won't open",
        "Outlook not starting",
        "Outlook error: {outlook_err}",
        "Outlook crashes",
        "Outlook stuck on loading profile",
    ],
    [
        "Outlook won't start. I get '{outlook_err}'. Outlook on the web works.",
        "Outlook opens then freezes on 'Loading profile'. Have restarted twice.",
        "Outlook keeps crashing when I open the calendar. Error '{outlook_err}'.",
        "Outlook shows 'Disconnected' at the bottom and no new emails since {time}.",
    ],
    weight=1.4,
)
scenario(
    COL,
    "Email",
    INC,
    "Email",
    ["Mailbox full", "Can't send emails - mailbox full", "Mailbox size limit", "Your mailbox is almost full"],
    [
        "I'm getting 'Your mailbox is full' warnings and now I can't send. Can you increase the "
        "limit or archive?",
        "Outlook says my mailbox is over its size limit. I've deleted loads but it still says full.",
        "Emails are bouncing back to senders saying my mailbox is full.",
    ],
    alt_kind=REQ,
    p_kind=0.3,
)
scenario(
    COL,
    "Email",
    INC,
    "Email",
    [
        "Emails not arriving",
        "Stuck in outbox",
        "Not receiving external emails",
        "Emails going to junk",
        "Email delivery failure",
    ],
    [
        "Emails from {app} aren't reaching me. Sender says they got no bounce.",
        "My emails are stuck in the Outbox and won't send. Outlook says connected.",
        "External customers say emails to {dept}@{domain} bounce with '550 5.1.1 Recipient not found'.",
        "Emails from a key supplier all go to junk even after I mark them as not junk.",
    ],
    weight=1.2,
)
scenario(
    COL,
    "Email",
    REQ,
    "Email",
    ["Calendar sharing", "Delegate access to calendar", "Share calendar with PA", "New distribution list"],
    [
        "Please set up {colleague} as a delegate on my calendar so they can accept meetings for me.",
        "Can you create a distribution list for the {dept} leadership team? Members attached.",
        "I need to see {colleague}'s calendar details, not just free/busy. They've agreed.",
        "Please create a shared calendar for {room} bookings.",
    ],
    alt=IAM,
    p_alt=0.15,
)
scenario(
    COL,
    "Collaboration",
    INC,
    "Teams",
    [
        "Teams audio not working",
        "No sound in Teams",
        "Teams mic not working",
        "Teams camera not detected",
        "Teams calls dropping",
    ],
    [
        "People can't hear me on Teams calls. Headset works in other apps. Teams says '{teams_err}'.",
        "No audio in Teams meetings since the update. I can see people but hear nothing.",
        "My camera isn't detected in Teams, it's fine in the Windows Camera app.",
        "Teams calls keep dropping after about 5 minutes with '{teams_err}'.",
    ],
    weight=1.3,
)
scenario(
    COL,
    "Collaboration",
    INC,
    "Teams",
    [
        "Can't share screen in Teams",
        "Teams meeting join problem",
        "Teams meeting room not working",
        "Teams won't load",
    ],
    [
        "When I try to share my screen in Teams the others see a black screen.",
        "Can't join Teams meetings from Outlook, the link opens a blank browser tab.",
        "The Teams Room in {room} won't join meetings, the console just says '{teams_err}'.",
        "Teams is stuck on the loading screen. Clearing the cache hasn't worked.",
    ],
)
scenario(
    COL,
    "Collaboration",
    INC,
    "SharePoint",
    [
        "OneDrive not syncing",
        "OneDrive sync error",
        "SharePoint files not syncing",
        "OneDrive error {sp_err}",
    ],
    [
        "OneDrive shows '{sp_err}' and my desktop files haven't synced since {day}.",
        "The {sp_site} library I sync keeps showing red crosses, '{sp_err}'.",
        "OneDrive says 'processing changes' for hours and uses 100% CPU.",
        "Files I save in the synced {sp_site} folder don't appear for colleagues.",
    ],
    weight=1.2,
)
scenario(
    COL,
    "Collaboration",
    INC,
    "SharePoint",
    [
        "SharePoint access denied",
        "Can't open SharePoint site",
        "SharePoint page broken",
        "Lost access to {sp_site}",
    ],
    [
        "I get 'Access denied' on the {sp_site} site. I had access last week.",
        "The {sp_site} SharePoint page just shows 'Something went wrong' with a correlation ID.",
        "Since the site was moved, links to documents in {sp_site} are all broken.",
    ],
    alt=IAM,
    p_alt=0.2,
)
scenario(
    COL,
    "Collaboration",
    REQ,
    "SharePoint",
    [
        "New SharePoint site",
        "New Teams team request",
        "Request a Teams channel",
        "Add external guest to Teams",
        "SharePoint site request",
    ],
    [
        "Please can we have a new SharePoint site for the {project} project with me and "
        "{colleague} as owners?",
        "Please create a Team for the {dept} restructure working group, private, about 8 members.",
        "We need to add an external consultant as a guest in our {dept} Team.",
        "Could we get a document library with version history for contracts on {sp_site}?",
    ],
)
scenario(
    COL,
    "Collaboration",
    QUE,
    "Teams",
    [
        "How do I record a Teams meeting?",
        "Teams question",
        "Where are Teams recordings saved?",
        "Large file sharing question",
    ],
    [
        "How do I record a Teams meeting and where does the recording end up?",
        "What's the best way to send a 3 GB file to a client? Email won't take it.",
        "Can external people join our Teams meetings without an account?",
    ],
    alt=SD,
    p_alt=0.3,
    alt_kind=INC,
    p_kind=0.15,
)

# ---- HR Systems -----------------------------------------------------------
scenario(
    HR,
    "HR & Payroll",
    INC,
    "Payroll",
    ["Can't see payslip", "Payslip not showing", "Payroll portal error", "Missing payslip for {month}"],
    [
        "My {month} payslip isn't in the payroll portal. Everyone else in {dept} has theirs.",
        "The payroll portal says 'Employee record not found' when I log in to view payslips.",
        "I can't download my P60 from the portal, the button does nothing.",
        "Payslip page shows a blank PDF.",
    ],
    weight=1.3,
)
scenario(
    HR,
    "HR & Payroll",
    INC,
    "Payroll",
    ["Wrong pay", "Overtime not paid", "Payslip incorrect", "Leave balance wrong"],
    [
        "My overtime from {month} hasn't been paid even though it was approved in the system.",
        "My holiday balance in the HR portal shows 3 days but I should have 12 left.",
        "Payslip shows the wrong tax code since I changed roles in {month}.",
        "Expenses claimed in {month} haven't come through with my salary.",
    ],
    alt_kind=QUE,
    p_kind=0.3,
)
scenario(
    HR,
    "HR & Payroll",
    REQ,
    "Payroll",
    [
        "New starter in HR system",
        "Add new starter to payroll",
        "Update job title in HR system",
        "Onboarding checklist",
    ],
    [
        "{colleague} starts in {dept} on {day} but isn't in the HR system yet, so IT can't "
        "create their account.",
        "Please update my job title and manager in the HR system, I've moved to {dept}.",
        "Can you trigger the onboarding workflow for {colleague}? The offer was accepted yesterday.",
    ],
    alt=IAM,
    p_alt=0.15,
)
scenario(
    HR,
    "HR & Payroll",
    REQ,
    "Payroll",
    ["Leaver in HR system", "Termination date", "Change of bank details"],
    [
        "Please record {colleague}'s last day as {day} in the HR system so payroll and IT are notified.",
        "I need to change my bank details for salary. The form in the portal errors on submit.",
        "Please process final pay for {colleague} who left the company on {day}.",
    ],
    alt=IAM,
    p_alt=0.15,
)
scenario(
    HR,
    "HR & Payroll",
    QUE,
    "Payroll",
    ["When is payday?", "Payroll question", "How do I update bank details?", "Where is my P60?"],
    [
        "When is the payroll cut-off for overtime this month?",
        "How do I update my home address and bank details?",
        "Where can I find my P60 for last tax year?",
        "Is the pay date moved because of the bank holiday?",
    ],
    alt=SD,
    p_alt=0.2,
    alt_kind=INC,
    p_kind=0.15,
)

# ---- Changes (planned work needing approval) and problems (root cause of repeats) -----
scenario(
    NET,
    "Network",
    CHG,
    "VPN",
    [
        "Change: firewall rule for {app}",
        "RFC - open port for {app}",
        "Planned change: VPN gateway upgrade",
        "Change request - firewall",
        "Maintenance window for VPN gateway",
    ],
    [
        "Requesting a change to open outbound 443 from the {dept} subnet to the {app} tenant. "
        "Risk assessed as low, rollback is removing the rule. Proposed window {day} 19:00-20:00.",
        "Change request: upgrade the VPN gateway firmware on {day} evening. Users will be "
        "disconnected for about 15 minutes; the CAB pack and back-out plan are attached.",
        "Please schedule the certificate renewal on the VPN concentrator before {month}. "
        "Implementation plan and test steps in the attached RFC.",
    ],
    weight=0.9,
)
scenario(
    BA,
    "Business Applications",
    CHG,
    "ERP",
    [
        "Change request: ERP report",
        "RFC: new approval step in {app}",
        "ERP configuration change",
        "Change to {app} workflow",
        "Release request for ERP transport",
    ],
    [
        "Raising an RFC to move transport {tcode}-042 to production on {day}. Tested in QA, "
        "business sign-off attached, back-out is the previous transport.",
        "Please approve a change to the {app} expense workflow: add a finance approval step for "
        "claims over 500 pounds. Go-live planned for {month}.",
        "Standard change: add the cost centre column to the open PO report in the ERP. Change "
        "window requested for {day} after 18:00.",
    ],
    weight=0.9,
    alt_kind=REQ,
    p_kind=0.15,
)
scenario(
    COL,
    "Collaboration",
    CHG,
    "SharePoint",
    [
        "Change: SharePoint retention policy",
        "RFC - Teams external access setting",
        "Planned change to the {sp_site} site",
    ],
    [
        "Requesting a change to the retention policy on {sp_site}: keep documents seven years. "
        "Legal have approved, the rollout plan is attached for CAB on {day}.",
        "Change request to allow external guests in Teams for the {dept} department. Risk review "
        "done; we would like it implemented in the next change window.",
    ],
    weight=0.7,
)
scenario(
    EUC,
    "Hardware",
    PRB,
    "Laptop fleet",
    [
        "Problem: repeated {laptop} docking failures",
        "Recurring BSOD on {laptop} fleet",
        "Root cause needed - laptops losing Wi-Fi after sleep",
    ],
    [
        "We have logged more than a dozen incidents this month where {laptop} machines lose the "
        "{dock} after waking. Please open a problem record and find the root cause; the "
        "workaround (re-seating the cable) is not sustainable.",
        "Recurring blue screens on the {laptop} fleet since the last driver update. Related "
        "incidents are linked. Can problem management investigate the underlying cause?",
        "Known error candidate: laptops drop the Wi-Fi after sleep across {site}. Multiple "
        "tickets raised; we need a permanent fix rather than restarts.",
    ],
    weight=0.8,
)
scenario(
    COL,
    "Email",
    PRB,
    "Email",
    [
        "Problem: Outlook keeps crashing for {dept}",
        "Recurring mailbox sync failures",
        "Root cause analysis - Outlook {outlook_err}",
    ],
    [
        "This is the fifth incident this week about Outlook crashing with '{outlook_err}' in "
        "{dept}. Please raise a problem and look for the root cause across all of them.",
        "Repeated mailbox sync failures for several users since the migration. Each incident was "
        "closed with a profile rebuild; we need the underlying cause found.",
        "Requesting a problem investigation: Teams calls keep dropping with {teams_err} for the "
        "whole {dept} floor, incidents linked below.",
    ],
    weight=0.7,
)
scenario(
    NET,
    "Network",
    PRB,
    "VPN",
    [
        "Problem record: VPN drops every afternoon",
        "Recurring VPN disconnects - root cause",
        "Known error: VPN '{vpn_err}'",
    ],
    [
        "Users at {site} report VPN disconnects every afternoon around 3pm. Individual incidents "
        "get closed but it keeps happening; please open a problem record and find the cause.",
        "Multiple incidents with '{vpn_err}' over the last two weeks. Workaround is reconnecting. "
        "Can problem management investigate and publish a known error?",
    ],
    weight=0.6,
)

# --------------------------------------------------------------------------
# Impact / urgency wording
# --------------------------------------------------------------------------
SCOPE = {  # impact level -> phrases
    1: [
        "This is affecting the whole floor.",
        "All users at {site} are affected.",
        "Nobody in the building can work.",
        "The entire {dept} department is affected.",
        "It's affecting everyone, not just me.",
        "Whole office is down.",
    ],
    2: [
        "A few of us in {dept} have the same problem.",
        "My whole team is affected.",
        "At least 5 people near me have it too.",
        "Colleague next to me has the same thing.",
    ],
    3: ["Just me as far as I know.", "Only my machine, others are fine.", "", "", ""],
}
URGENCY = {
    1: [
        "I can't work at all.",
        "This is urgent, the CEO needs this for the board meeting at {time}.",
        "We have a client demo in 20 minutes!",
        "Payroll run is today.",
        "Can't do anything until this is fixed.",
        "Month-end close is today, please treat as urgent.",
        "Customers are waiting on the phone.",
    ],
    2: [
        "I can work around it for now but it's slowing me down.",
        "Would be good to get this sorted today.",
        "It's quite disruptive.",
        "Needed by end of day if possible.",
    ],
    3: [
        "No rush, whenever you get a chance.",
        "Not urgent.",
        "When you get a chance, thanks.",
        "Low priority, just letting you know.",
        "",
        "",
    ],
}
QUE_URGENCY = {
    2: ["Need to know before my trip on {day}.", "Could someone get back to me today?"],
    3: ["Thanks in advance.", "Just curious.", "", "", "", ""],
}
REQ_URGENCY = {
    2: [
        "They start on {day} so it's needed by then.",
        "Needed by end of the week please.",
        "Need this before Monday.",
        "Would be good to get this sorted today.",
        "Needed by end of day if possible.",
    ],
    3: ["No rush.", "Whenever convenient.", "Not urgent.", "When you get a chance, thanks.", "", "", ""],
}

# --------------------------------------------------------------------------
# Channel dressing, signatures and quoted history
# --------------------------------------------------------------------------
GREETINGS = [
    "Hi,",
    "Hi team,",
    "Hello,",
    "Hi IT,",
    "Good morning,",
    "Hiya,",
    "Dear Service Desk,",
    "Hello IT support,",
    "",
]
CLOSINGS = [
    "Thanks",
    "Thanks,",
    "Many thanks,",
    "Kind regards,",
    "Regards,",
    "Cheers,",
    "Thanks in advance",
    "Best regards,",
]
WEB_LEADS = ["", "", "Description: ", "Describe your issue: ", "Details: "]
PHONE_LEADS = [
    "Caller reports: ",
    "User called in. ",
    "Phone call from {full} ({dept}, ext. {ext}). ",
    "Rang SD: ",
    "Call logged on behalf of {full}. ",
]
PHONE_TAILS = [
    "Advised user to restart, no change.",
    "Asked user to try again later; escalating.",
    "Troubleshooting done on call, not resolved.",
    "User confirmed contact number {tel}.",
    "",
]
SOCIAL_LEADS = ["Posted in the IT Help community on Viva Engage: ", "Yammer post: ", "@ACMEhelpdesk "]


def signature(rng, full, dept, tier):
    company = rng.choice(["ACME", "ACME Ltd", "Acme Group"])
    kind = rng.random()
    if kind < 0.25:
        return "Sent from my iPhone"
    if kind < 0.35:
        return "Get Outlook for Android"
    title = rng.choice(
        ["Analyst", "Manager", "Coordinator", "Assistant", "Director", "Team Lead", "Administrator"]
    )
    if tier == "vip":
        title = rng.choice(["Chief Executive Officer", "Chief Financial Officer", "Executive Director"])
    lines = ["--", full, f"{title}, {dept} | {company}"]
    if rng.random() < 0.6:
        lines.append(f"T: +44 113 496 {rng.randint(1000, 9999)}")
    if rng.random() < 0.3:
        lines.append("This email and any attachments are confidential.")
    return "\n".join(lines)


def quoted_history(rng, when, title, me_full, me_email):
    """An older message below the new text, the way mail clients quote it."""
    agent = rng.choice(["Service Desk", "IT Service Desk", "Helpdesk"])
    prior = (when - timedelta(days=rng.randint(1, 20))).replace(
        hour=rng.randint(8, 17), minute=rng.randint(0, 59)
    )
    ref = f"INC{rng.randint(100000, 999999)}"
    old = [
        f"Hi {me_full.split()[0]},",
        "",
        f"Your request {ref} has been resolved. If the problem comes back, just reply to this email.",
        "",
        "Kind regards,",
        agent,
    ]
    style = rng.random()
    if style < 0.45:
        stamp = f"{prior:%a}, {prior.day} {prior:%b %Y} at {prior:%H:%M}"
        head = f"On {stamp}, {agent} <servicedesk@{DOMAIN}> wrote:"
        return head + "\n" + "\n".join("> " + ln if ln else ">" for ln in old)
    subject = "RE: " + re.sub(r"^((re|fw|fwd):\s*)+", "", title, flags=re.I)
    if style < 0.75:
        head = [
            "-----Original Message-----",
            f"From: {agent} <servicedesk@{DOMAIN}>",
            f"Sent: {prior:%A}, {prior.day} {prior:%B %Y %H:%M}",
            f"To: {me_full} <{me_email}>",
            f"Subject: {subject}",
        ]
    else:
        head = [
            "________________________________",
            f"From: {agent}",
            "Sent: " + prior.strftime("%d %B %Y %H:%M"),
            f"To: {me_full}",
            f"Subject: {subject}",
        ]
    return "\n".join(head) + "\n\n" + "\n".join(old)


def mojibake(text):
    """UTF-8 bytes read as Windows-1252: ``Café`` → ``CafÃ©``, ``don’t`` → ``donâ€™t``."""
    out = []
    for ch in text:
        if ord(ch) < 128:
            out.append(ch)
            continue
        for b in ch.encode("utf-8"):
            try:
                out.append(bytes([b]).decode("cp1252"))
            except UnicodeDecodeError:
                out.append(bytes([b]).decode("latin-1"))
    return "".join(out)


def smart_quotes(text):
    """What Word and Outlook do to straight quotes as you type."""
    text = re.sub(r"(^|[\s(])'", "\\1\u2018", text)
    return text.replace("'", "\u2019")


def odd_whitespace(rng, text):
    choice = rng.randrange(5)
    if choice == 0:
        return text.replace("\n", "\r\n")
    if choice == 1:
        return "\n\n  " + text.replace(". ", ".  ", 3) + "   \n\n"
    if choice == 2:
        return text.replace(" ", "\u00a0", 4)
    if choice == 3:
        return "\t" + text.replace("\n", " \n") + "\n \n"
    return text.replace(". ", ".\n\n\n", 2)


# --------------------------------------------------------------------------
# Slot filling
# --------------------------------------------------------------------------
class Slots(dict):
    """Fills ``{name}`` placeholders lazily, one random pick per name per ticket."""

    def __init__(self, rng, person):
        super().__init__()
        self.rng = rng
        self.update(person)

    def __missing__(self, key):
        r = self.rng
        pools = {
            "site": SITES,
            "floor": FLOORS,
            "room": ROOMS,
            "laptop": LAPTOPS,
            "printer": PRINTERS,
            "monitor": MONITORS,
            "dock": DOCKS,
            "software": SOFTWARE,
            "vpn_err": VPN_ERR,
            "project": PROJECTS,
            "outlook_err": OUTLOOK_ERR,
            "teams_err": TEAMS_ERR,
            "sp_site": SP_SITES,
            "sp_err": SP_ERR,
            "tcode": TCODES,
            "sso_err": SSO_ERR,
            "app": APPS,
            "phone": PHONES,
            "month": MONTHS,
            "day": DAYS,
            "mailbox": [
                "accounts",
                "invoices",
                "hr-enquiries",
                "sales-orders",
                "facilities",
                "recruitment",
                "customer.care",
            ],
        }
        if key in pools:
            val = r.choice(pools[key])
        elif key == "colleague":
            val = f"{r.choice(FIRST)} {r.choice(LAST)}"
        elif key in ("user2",):
            val = f"{r.choice(FIRST)[0].lower()}{r.choice(LAST).lower()}".replace("'", "")
        elif key == "asset":
            val = r.choice(ASSETS).format(r.randint(100, 99999))
        elif key == "num3":
            val = str(r.randint(100, 450))
        elif key == "num4":
            val = str(r.randint(1000, 9999))
        elif key == "time":
            val = f"{r.randint(8, 16)}:{r.choice(['00', '15', '30', '45'])}"
        elif key == "erp_err":
            val = r.choice(ERP_ERR).format_map(self)
        elif key == "rand_sender":
            val = f"{r.choice(['no-reply', 'admin', 'security'])}@{r.choice(['m1crosoft-verify.com', 'office365-support.net', 'mailbox-quota.co'])}"
        elif key == "domain":
            val = DOMAIN
        elif key == "ext":
            val = str(r.randint(2000, 7999))
        elif key == "tel":
            val = f"07{r.randint(100, 999)} {r.randint(100000, 999999)}"
        else:
            raise KeyError(key)
        self[key] = val
        return val


def fill(text, slots):
    return text.format_map(slots)


# --------------------------------------------------------------------------
# One ticket
# --------------------------------------------------------------------------
SOURCES = ["email", "web", "chat", "phone", "social"]
SOURCE_W = [0.42, 0.30, 0.15, 0.10, 0.03]
TIERS = ["standard", "gold", "vip"]
TIER_W = [0.76, 0.18, 0.06]


NEIGHBOURS = {
    "Access": ["Security", "Email"],
    "Security": ["Access", "Email"],
    "Email": ["Collaboration", "Access"],
    "Collaboration": ["Email", "Software"],
    "Hardware": ["Software"],
    "Software": ["Hardware", "Business Applications"],
    "Network": ["Hardware", "Access"],
    "Business Applications": ["Software", "HR & Payroll"],
    "HR & Payroll": ["Business Applications", "Access"],
}


def pick_levels(rng, kind, tier):
    """Impact and urgency as the requester's words imply, with some disagreement."""
    if kind == INC:
        impact = rng.choices([1, 2, 3], [0.15, 0.27, 0.58])[0]
        urgency = rng.choices([1, 2, 3], [0.25, 0.45, 0.30])[0]
        if tier == "vip" and rng.random() < 0.6:
            urgency = 1
    else:
        impact = rng.choices([2, 3], [0.12, 0.88])[0]
        urgency = rng.choices([2, 3], [0.35, 0.65])[0]
    return impact, urgency


_STOP = {
    "can't",
    "cant",
    "can",
    "not",
    "my",
    "the",
    "to",
    "for",
    "with",
    "in",
    "on",
    "of",
    "a",
    "i",
    "and",
    "is",
    "please",
    "need",
    "needed",
    "request",
    "required",
    "new",
    "how",
    "do",
    "get",
    "me",
    "question",
    "error",
    "issue",
    "problem",
    "-",
    "won't",
    "keep",
    "keeps",
    "very",
    "working",
    "when",
    "where",
    "what",
    "are",
    "be",
    "access",
}


def _words(text):
    return {w[:5] for w in re.findall(r"[a-z0-9'\\:.-]+", text.lower()) if w not in _STOP}


def pick_title(rng, titles, body, source):
    """A subject that fits the body: a matching template title, or the first sentence.

    People often paste their first sentence as the subject, so when no template title
    fits (or sometimes anyway, on web forms) we cut one from the body.
    """
    body_words = _words(body)
    fitting = [t for t in titles if _words(t) and len(_words(t) & body_words) / len(_words(t)) >= 0.75]
    if fitting and not (source == "web" and rng.random() < 0.25):
        return rng.choice(fitting)
    first = re.split(r"(?<=[.!?])\s", body, maxsplit=1)[0].rstrip(".!?")
    words = first.split()
    if len(words) > 9:
        first = " ".join(words[: rng.randint(6, 9)]).rstrip(",;:") + rng.choice(["...", "", ""])
    return first


def make_ticket(rng, index, when):
    sc = rng.choices(S, [s["weight"] for s in S])[0]
    first, last = rng.choice(FIRST), rng.choice(LAST)
    full = f"{first} {last}"
    email_local = f"{first}.{last}".lower().replace("'", "").replace(" ", "")
    email = f"{email_local}@{DOMAIN}"
    dept = rng.choice(DEPTS)
    tier = rng.choices(TIERS, TIER_W)[0]
    source = rng.choices(SOURCES, SOURCE_W)[0]
    person = {
        "full": full,
        "first": first,
        "dept": dept,
        "user": f"{first[0]}{last}".lower().replace("'", ""),
    }
    slots = Slots(rng, person)

    core = fill(rng.choice(sc["bodies"]), slots)
    title = pick_title(rng, [fill(t, slots) for t in sc["titles"]], core, source)
    impact, urgency = pick_levels(rng, sc["kind"], tier)

    extras = []
    if sc["kind"] == INC:
        extras.append(fill(rng.choice(SCOPE[impact]), slots))
        extras.append(fill(rng.choice(URGENCY[urgency]), slots))
    else:
        phrases = QUE_URGENCY if sc["kind"] == QUE else REQ_URGENCY
        extras.append(fill(rng.choice(phrases[urgency]), slots))
    extras = [e for e in extras if e]
    rng.shuffle(extras)
    text = " ".join([core] + extras)

    # Label noise: the impact the agent recorded is not always what the words say.
    if rng.random() < 0.10:
        impact = min(3, max(1, impact + rng.choice([-1, 1])))
    if rng.random() < 0.10:
        urgency = min(3, max(1, urgency + rng.choice([-1, 1])))

    if urgency == 1 and source == "email" and rng.random() < 0.35:
        title = rng.choice(["URGENT: ", "Urgent - ", "URGENT!! ", "P1 - "]) + title
    if source == "email" and rng.random() < 0.12:
        title = rng.choice(["RE: ", "FW: ", "Re: "]) + title

    body = dress(rng, source, text, slots, full, dept, tier, title, when, email)
    if rng.random() < 0.06:
        title = title.lower()

    # Routing ambiguity: the same words land with another team now and then.
    team = sc["team"]
    if sc["alt"] and rng.random() < sc["p_alt"]:
        team = sc["alt"]
    kind = sc["kind"]
    if sc["alt_kind"] and rng.random() < sc["p_kind"]:
        kind = sc["alt_kind"]
    elif rng.random() < 0.03:
        kind = rng.choice([k for k in (INC, REQ, QUE) if k != kind])

    # Agents disagree on categories that sit next to each other.
    category = sc["category"]
    if rng.random() < 0.06:
        category = rng.choice(NEIGHBOURS[category])

    # Export traps.
    if rng.random() < 0.06:
        body = mojibake(smart_quotes(body))
        if rng.random() < 0.4:
            title = mojibake(smart_quotes(title))
    if rng.random() < 0.07:
        body = odd_whitespace(rng, body)
    if rng.random() < 0.03:
        if rng.random() < 0.5:
            team = ""
        else:
            kind = ""

    impact_out = str(impact)
    if kind != INC and rng.random() < 0.45:
        impact_out = ""
    return {
        "ticket_id": f"INC{1004200 + index * 7 + rng.randint(0, 6)}",
        "opened_at": when.isoformat(timespec="seconds"),
        "source": source,
        "requester_email": email,
        "tier": tier,
        "service": sc["service"],
        "title": title,
        "description": body,
        "kind": kind,
        "impact": impact_out,
        "urgency": str(urgency),
        "assignment_group": team,
        "category": category,
    }


def dress(rng, source, text, slots, full, dept, tier, title, when, email):
    """Make the text look like it came through its channel."""
    if source == "email":
        if rng.random() < 0.3:
            text = smart_quotes(text)
        parts = []
        greet = rng.choice(GREETINGS)
        if greet:
            parts.append(greet)
        parts.append(text)
        parts.append(rng.choice(CLOSINGS) + "\n" + slots["first"])
        body = "\n\n".join(parts)
        if rng.random() < 0.35:
            body += "\n\n" + signature(rng, full, dept, tier)
        if rng.random() < 0.12:
            body += "\n\n" + quoted_history(rng, when, title, full, email)
        return body
    if source == "web":
        lead = rng.choice(WEB_LEADS)
        body = lead + text
        if rng.random() < 0.3:
            body += (
                f"\n\nLocation: {slots['site']}\nPreferred contact: {rng.choice(['Teams', 'email', 'phone'])}"
            )
        return body
    if source == "chat":
        t = when
        name = full
        lines = [
            f"[{t:%H:%M}] {name}: {rng.choice(['hi', 'hello', 'hey', 'morning'])}",
            f"[{t:%H:%M}] {name}: {text[0].lower() + text[1:]}",
        ]
        if rng.random() < 0.5:
            t2 = t + timedelta(minutes=1)
            lines.append(
                f"[{t2:%H:%M}] Agent (Virtual Agent): Thanks {slots['first']}, I've "
                "logged this for the right team."
            )
        return "\n".join(lines)
    if source == "phone":
        lead = fill(rng.choice(PHONE_LEADS), slots)
        tail = fill(rng.choice(PHONE_TAILS), slots)
        return (lead + text + (" " + tail if tail else "")).strip()
    return fill(rng.choice(SOCIAL_LEADS), slots) + text


# --------------------------------------------------------------------------
# Timestamps
# --------------------------------------------------------------------------
def uk_offset(dt):
    """British Summer Time, roughly: last Sunday of March to last Sunday of October."""

    def last_sunday(year, month):
        d = datetime(year, month, 31 if month in (3, 10) else 30)
        return d - timedelta(days=(d.weekday() + 1) % 7)

    start, end = last_sunday(dt.year, 3), last_sunday(dt.year, 10)
    return timezone(timedelta(hours=1)) if start <= dt < end else timezone.utc


def timestamps(rng, n):
    start = datetime(2023, 1, 3)
    out = []
    while len(out) < n:
        d = start + timedelta(days=rng.randint(0, 540))
        weekend = d.weekday() >= 5
        if weekend and rng.random() < 0.85:
            continue
        hour = rng.choices(
            range(24), [1, 1, 1, 1, 1, 1, 2, 5, 12, 14, 12, 10, 7, 9, 11, 10, 8, 5, 2, 2, 1, 1, 1, 1]
        )[0]
        local = d.replace(hour=hour, minute=rng.randint(0, 59), second=rng.randint(0, 59))
        out.append(local.replace(tzinfo=uk_offset(local)))
    return sorted(out)


def generate(rows=ROWS, seed=SEED):
    rng = random.Random(seed)
    return [make_ticket(rng, i, when) for i, when in enumerate(timestamps(rng, rows))]


FIELDS = [
    "ticket_id",
    "opened_at",
    "source",
    "requester_email",
    "tier",
    "service",
    "title",
    "description",
    "kind",
    "impact",
    "urgency",
    "assignment_group",
    "category",
]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=ROWS)
    ap.add_argument("--seed", type=int, default=SEED)
    ap.add_argument("--out", type=Path, default=HERE / "tickets.csv")
    args = ap.parse_args(argv)
    tickets = generate(args.rows, args.seed)
    with open(args.out, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=FIELDS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(tickets)
    print(f"wrote {len(tickets)} tickets to {args.out}")


if __name__ == "__main__":
    main()

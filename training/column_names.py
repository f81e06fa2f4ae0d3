"""What help-desk tools call their columns: the words ``triage mapping`` matches names against.

ServiceNow, Jira/JSM, Zendesk, Freshdesk, osTicket, GLPI, OTRS/Znuny and the shared exports'
own names, and the same words in French, German, Spanish, Italian, Dutch, Portuguese,
Swedish, Japanese, Chinese, Korean and Russian. Names are compared by :func:`key`: no case,
accents, punctuation or extra spaces, camelCase split, letters of every script kept.
"""

from __future__ import annotations

import re
import unicodedata

# Column names per use, compared without case, accents' spacing or punctuation: each tool's
# and several languages' words (ServiceNow, Jira/JSM, Zendesk, Freshdesk, osTicket, GLPI,
# OTRS/Znuny, the shared exports' own).
_WORDS = {
    "subject": (
        "件名|标题|主题|標題|제목|тема|заголовок|"
        "subject|title|summary|short description|shortdescription|ticket title|titre|"
        "sujet|betreff|titel|asunto|titulo|titolo|oggetto|onderwerp|assunto|rubrik|"
        "issue summary|name"
    ),
    "body": (
        "本文|内容|描述|詳細|説明|问题描述|내용|설명|описание|текст|"
        "description|body|details|text|content|message|document|problem|"
        "long description|issue description|first message|ticket description|"
        "beschreibung|inhalt|nachricht|descripcion|descrizione|beschrijving|descricao|"
        "beskrivning|comment|comments|note|request"
    ),
    "id": (
        "番号|编号|번호|номер|"
        "id|ticket id|ticketid|ticket number|ticketnumber|number|issue key|key|issue id|"
        "ticket|ticket no|case number|incident number|nummer|numero"
    ),
    "created_at": (
        "作成日|作成日時|创建时间|创建日期|생성일|дата создания|создано|"
        "created|created at|createdat|created time|created date|creation date|"
        "date created|opened|opened at|opened_at|sys created on|submitted|submitted at|"
        "reported|reported date|open date|date|date d'ouverture|date de creation|"
        "erstellt|erstellt am|fecha de creacion|data di creazione"
    ),
    "channel": "channel|source|via|via channel|contact type|origin|quelle|canal|origine",
    "requester": (
        "requester|requester email|reporter|caller|caller id|from|from email|customer|"
        "customer email|email|requested by|demandeur|customerid|customer id|"
        "customeruser|kunde|solicitante"
    ),
    "customer_tier": "tier|customer tier|plan|sla plan|customer plan|segment",
    "affected_service": (
        "service|business service|affected service|cmdb ci|configuration item|"
        "application|product|system|dienst"
    ),
    "team": (
        "グループ|担当グループ|处理组|团队|分组|팀|담당팀|группа|отдел|команда|"
        "team|group|assignment group|assigned group|group id|group name|queue|"
        "department|support group|resolver group|topic group|assigned team|"
        "attribue a groupe|groupe|gruppe|grupo|gruppo|component|components|component s"
    ),
    "type": (
        "種別|タイプ|类型|유형|тип|"
        "type|ticket type|issue type|kind|request type|incident type|record type|typ|tipo|ticket_type"
    ),
    "priority": "priority|prio|priorite|prioritat|prioridad|priorita|severity|優先度|优先级|우선순위|приоритет",
    "impact": "impact|auswirkung|impacto",
    "urgency": "urgency|urgence|dringlichkeit|urgencia|urgenza",
    "category": (
        "カテゴリ|カテゴリー|分类|类别|分類|카테고리|категория|"
        "category|categorie|kategorie|categoria|help topic|topic|subcategory|"
        "sub category|sub category1|classification|service category"
    ),
}
NAMES: dict[str, tuple[str, ...]] = {use: tuple(words.split("|")) for use, words in _WORDS.items()}
# outcomes and bookkeeping, not what a ticket is when it arrives: never drafted as labels
NOT_LABELS = (
    "status",
    "state",
    "resolution",
    "resolved",
    "closed",
    "updated",
    "assignee",
    "agent",
    "satisfaction",
    "rating",
    "sla",
    "due",
    "overdue",
    "answered",
    "count",
    "escalat",
    "time",
)


def key(name: str) -> str:
    """A column name as compared with :data:`NAMES`: no case, accents, punctuation or extra
    spaces; letters of every script kept (件名, Тема)."""
    plain = "".join(c for c in unicodedata.normalize("NFKD", str(name)) if not unicodedata.combining(c))
    plain = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", plain)  # camelCase, TicketNumber
    return " ".join(re.sub(r"[\W_]+", " ", plain.casefold()).split())

"""Bilingual concept lexicon: German and English wordings mapped to shared concepts.

A concept fires the same feature (``c:<concept>``) whichever language the request is written in,
so evidence learnt from German requests also counts for English ones and the other way round.

Pattern forms:
- ``"two factor"``: a phrase, matched token by token on lower-cased text (spaCy PhraseMatcher).
- ``"passw*"``: a token prefix, for inflections ("Passwörter", "passwords").
- ``"*lücke"``: a token suffix, for German compounds ("Sicherheitslücke", "Datenschutzlücke").
- ``"*verschlüssel*"``: a token infix, for compounds with the stem inside ("unverschlüsselt").

Renaming a concept changes the artifact's features: bump ``ARTIFACT_FORMAT`` in
``model/artifact.py`` when you do.
"""

CONCEPTS: dict[str, tuple[str, ...]] = {
    "authentication": (
        "passw*", "kennw*", "*passwort*", "*passwörter*", "*kennwort*", "2fa", "mfa", "totp",
        "two factor", "two-factor", "2-factor", "multi-factor", "multifactor*", "zwei-faktor*",
        "zweifaktor*", "2-faktor*", "sso", "single sign-on", "single sign on", "saml", "oidc",
        "okta", "entra", "azure ad", "authenticat*", "authentifizier*", "*authentifizierung",
        "lockout", "locked out", "failed login*", "fehlgeschlagene*", "anmeldeversuch*",
        "brute force", "brute-force", "bruteforce", "session timeout", "sitzungs*", "pin-code*",
        "pin code", "pins", "pin", "*-pin", "otp", "auto-logout", "logout", "abmelden",
        "ausloggen", "eingeloggt", "logged in", "stays logged", "bleibt angemeldet",
    ),
    "access_control": (
        "zugriff*", "*zugriff", "berechtig*", "*berechtigung*", "permission*", "access",
        "accessible", "unauthori*", "unbefugt*", "unberechtigt*", "privileg*", "rechte",
        "admin rights", "adminrechte", "idor", "read-only", "nur lesen", "rollen*", "role*",
    ),
    "exposure": (
        "can see", "could see", "sieht", "can listen", "can still", "could listen",
        "einsehen", "mithören", "abhören", "anhören", "listen to", "jeder kann", "anyone can",
        "everyone can", "everybody can", "alle sehen", "without login", "without logging",
        "ohne anmeldung", "ohne login", "ohne passwort", "without a password", "öffentlich*",
        "public link", "publicly", "strangers", "fremde*", "wrong people", "falschen leute",
        "leak*", "geleakt", "exposed", "offen im", "einfach so", "intercept*", "mitlesen",
    ),
    "leaver": (
        "ehemalig*", "ausgeschieden*", "ausgetreten*", "former employee*", "ex-employee*",
        "ex-mitarbeiter*", "left the company", "who left", "has left", "no longer work*",
        "nicht mehr bei uns", "nicht mehr im", "gekündigt", "kündigung", "offboarding", "leaver*",
        "praktikant*", "intern", "austritt", "ausgeschiedene*", "still has access",
        "noch zugriff", "noch immer zugriff",
    ),
    "encryption": (
        "verschlüssel*", "*verschlüssel*", "encrypt*", "unencrypted", "tls", "srtp", "https",
        "ssl", "zertifikat*", "*zertifikat", "certificate*", "cert", "certs", "at rest",
        "klartext", "plaintext", "plain text", "cleartext", "clear text", "end-to-end", "e2e",
        "ende-zu-ende*", "cipher*", "sha1", "md5",
    ),
    "vulnerability": (
        "*lücke", "*luecke", "vulnerab*", "exploit*", "xss", "injection", "cve*", "pentest*",
        "penetration*", "idor", "csrf", "cross-site", "schwachstelle*", "angriff*", "attack*",
        "hacker*", "gehackt", "hacked", "malicious", "script-tag", "<script>", "sanitiz*",
        "manipulier*", "tamper*", "spoof*", "phishing", "malware", "trojan*", "ddos",
    ),
    "toll_fraud": (
        "gebührenbetrug", "toll fraud", "toll-fraud", "betrug*", "*betrug", "fraud*",
        "missbrauch*", "abuse", "premium number*", "premium-rate", "premium rate",
        "mehrwertnummer*", "mehrwertdienst*", "0900*", "teure anrufe", "expensive calls",
        "phone bill", "telefonrechnung", "huge bill", "horrende*", "auslandsgespräche",
        "international calls", "ins ausland",
    ),
    "data_protection": (
        "dsgvo", "gdpr", "datenschutz*", "*datenschutz", "data protection", "privacy",
        "personal data", "personenbezogen*", "löschfrist*", "retention", "aufbewahrung*",
        "aufbewahrungsfrist*", "right to be forgotten", "löschung*", "löschen", "deletion",
        "delete", "pseudonym*", "anonymi*", "auftragsverarbeitung*", "avv", "dpa", "dpo",
        "datenschutzbeauftragte*", "data subject", "betroffene*", "auskunft*", "consent",
        "einwilligung*",
    ),
    "audit": (
        "audit*", "änderungsprotokoll*", "change log", "changelog", "who changed",
        "wer hat", "nachvollzieh*", "traceab*", "siem", "syslog", "log export", "logins",
        "login history", "anmeldehistorie", "zugriffsprotokoll*", "access log*",
    ),
    "firmware_integrity": (
        "signed firmware", "signiert*", "signatur*", "signature*", "secure boot", "unsigned",
        "unsigniert*",
    ),
    "call_routing": (
        "weiterleit*", "*weiterleitung*", "umleit*", "*umleitung*", "forward*", "rout*",
        "redirect*", "durchwahl*", "overflow", "fallback", "failover", "zustell*", "rufgruppe*",
        "transfer*", "vermittl*", "übergabe",
    ),
    "office_hours": (
        "öffnungszeit*", "*öffnungszeiten", "geschäftszeit*", "bürozeit*", "office hours",
        "opening hours", "business hours", "after hours", "out of hours", "feiertag*",
        "*feiertag*", "holiday*", "bank holiday*", "night mode", "nachtschaltung*", "nachtmodus",
        "nachtbetrieb", "weekend*", "wochenende*", "mittagspause", "lunch break", "betriebsurlaub", "christmas", "weihnacht*", "zeitsteuerung",
        "time-based", "zeitgesteuert*", "schedule*",
    ),
    "ivr": (
        "ivr", "sprachmenü*", "*menü", "voice menu", "auto attendant", "auto-attendant",
        "menu", "tastenwahl", "press 1", "press 2", "drücken sie", "taste 1", "taste 2",
        "sprachdialog*", "dtmf", "option 1", "option 2",
    ),
    "queue": (
        "queue*", "warteschlange*", "*warteschlange", "call center", "callcenter*",
        "call-center", "contact center", "contact-center", "hunt group*", "ring group*",
        "sammelruf*", "gruppenruf*", "agent*", "hotline*", "wartezeit*", "waiting time",
        "wait time", "pickup group*", "pickup", "heranholen", "anrufübernahme",
    ),
    "announcement": (
        "ansage*", "*ansage", "announcement*", "greeting*", "begrüßung*", "prompt*",
        "wartemusik", "hold music", "music on hold", "moh", "warteschleifenmusik",
        "*musik", "jingle", "melodie", "ringtone*", "klingelton*", "*klingelton",
    ),
    "voicemail": (
        "voicemail*", "voice mail*", "mailbox*", "anrufbeantworter*", "sprachnachricht*",
        "*sprachnachricht*", "voice message*", "ab-ansage",
    ),
    "phone_keys": (
        "blf", "function key*", "funktionstaste*", "*taste", "*tasten", "busy lamp",
        "speed dial*", "kurzwahl*", "zielwahl*", "besetztlampe*", "leuchttaste*", "dss",
    ),
    "provisioning": (
        "provision*", "*provisioning", "template*", "vorlage*", "firmware*", "config file*",
        "konfigurationsdatei*", "autoprov*", "zero touch", "zero-touch", "rollout*",
        "ausroll*",
    ),
    "recording": (
        "aufzeichn*", "*aufzeichnung*", "aufnahme*", "*aufnahme*", "record*", "mitschnitt*",
        "mitschneiden", "recorded",
    ),
    "reporting": (
        "report*", "bericht*", "*bericht", "statistik*", "*statistik", "auswertung*",
        "dashboard*", "wallboard*", "kpi*", "analytics", "export*", "reporting",
    ),
    "integration": (
        "integration*", "*integration", "schnittstelle*", "api", "apis", "rest api",
        "webhook*", "crm", "salesforce", "hubspot", "zendesk", "pipedrive", "zoho",
        "servicenow", "jira", "slack", "google workspace", "gmail", "teams", "microsoft teams",
        "outlook", "sap", "datev", "personio", "shopify", "erp", "scim", "connector*",
        "konnektor*", "plugin*", "plug-in", "add-on", "sync*", "synchronis*",
    ),
    "automation": (
        "automati*", "*automatisch", "manual*", "manuell*", "by hand", "von hand",
        "one click", "one-click", "ein klick", "einem klick", "bulk", "massen*",
        "in bulk", "csv import", "csv-import", "every time", "jedes mal",
        "each time", "copy", "kopier*", "klonen", "clone", "duplizier*", "vorlagen",
        "mühsam", "tedious", "händisch*", "einzeln", "one by one", "one at a time",
    ),
    "scale": (
        "all customers", "alle kunden", "all our customers", "all of our customers",
        "many customers", "viele kunden", "viele unserer kunden", "every customer",
        "jeder kunde", "many of our customers", "most customers", "die meisten kunden",
        "most of our customers", "every partner", "alle partner", "andere partner",
        "other partners", "every call center", "jedes call center", "markt", "market",
        "competitor*", "wettbewerb*", "konkurrenz*", "mitbewerber*", "standard",
        "sämtliche*", "jede firma", "every company",
        "every business", "all customers", "kundenübergreifend",
    ),
    "time_money": (
        "saves time", "save time", "saving time", "spart zeit", "zeit sparen", "zeitersparnis",
        "time saving", "time-saving", "save money", "saves money", "geld", "kosten*",
        "*kosten", "cost*", "efficien*", "effizien*", "productiv*", "produktiv*",

        "aufwand", "effort", "workload", "hours per week", "stunden pro woche",
        "umsatz", "revenue",
    ),
    "single_customer": (
        "one customer", "ein kunde", "einen kunden", "einem kunden", "only for", "nur für",
        "just for", "only this customer", "specific customer", "a single customer",
        "einzelner kunde", "einzigen kunden", "one client", "einer kundin", "only one",
        "nur ein", "nur einer", "just one", "this one customer", "diesen einen",
        "ceo", "chef", "geschäftsführer*", "boss", "owner", "inhaber*",
    ),
    "gimmick": (
        "spiel*", "game*", "easter egg", "easter-egg", "osterei", "museum", "retro",
        "nostalgi*", "just for fun", "spaß", "fun", "gimmick", "lustig*", "funny",
        "farbe*", "*farbe", "color*", "colour*", "pink", "glitter", "animation*", "emoji*",
        "sound effect*", "soundeffekt*", "klingon", "horoskop*", "horoscope", "wetter",
        "weather", "witz*", "joke*", "cool", "schick", "fancy", "hübsch*",
    ),
    "legacy": (
        "legacy", "isdn", "analog*", "proprietär*", "proprietary", "discontinued",
        "eingestellt", "vintage", "uralt*", "ancient", "very old", "sehr alt*", "1990*",
        "199*", "20 jahre", "20 years", "old phones", "alte telefone", "alten telefone",
        "out of support", "end of life", "eol", "fax machine", "modem*", "pager",
    ),
    "howto_config": (
        "how do i", "how do we", "how can we", "how can i", "how to", "howto", "how-to",
        "wie kann", "wie können", "wie richte", "wie richten", "wie stelle", "einrichten",
        "eingerichtet", "einstellen", "eingestellt", "konfigurier*", "configur*", "set up",
        "setup", "enable", "aktivieren", "activate", "geht das", "is it possible",
        "is there a way", "gibt es eine möglichkeit", "kann man", "can we", "can i",
        "customer wants", "kunde möchte", "kunde will", "kunde wünscht", "kunde hätte gern",
        "möchte gerne", "anleitung", "guide", "doku",
        "documentation", "settings", "einstellung*", "admin panel", "adminpanel",
        "admin-portal", "admin portal",
    ),
    "product_change": (
        "please add", "bitte einbauen", "please implement", "implementier*", "feature request",
        "would be great", "wäre toll", "wäre super", "wäre schön", "wäre klasse",
        "wäre hilfreich", "would be nice", "would be helpful", "new feature", "neues feature",
        "neue funktion", "roadmap", "native*", "does not exist", "doesn't exist",
        "gibt es nicht", "gibt es leider nicht", "fehlt", "missing", "not possible",
        "nicht möglich", "support for", "unterstützung für", "unterstützt nicht",
        "not supported", "doesn't support", "does not support", "lack*", "vermiss*",
        "entwickeln", "develop", "build", "bauen",
    ),
}

# Statements that a request is NOT about security ("no security issue, just a new ringtone").
# The security words inside such a statement are evidence against the label, not for it.
NEGATION_WORDS = r"(?:no|not|nothing|none|isn't|isnt|kein|keine|keinen|keinem|keiner|nicht|nichts|ohne)"
SECURITY_WORDS = (
    r"(?:security|secure|sicherheit\w*|sicherheits\w*|datenschutz\w*|privacy|gdpr|dsgvo"
    r"|vulnerability|sicherheitsl\w*)"
)
CONCERN_WORDS = (
    r"(?:issue|issues|problem|problems|concern|concerns|risk|risks|relevant|related|thema"
    r"|frage|bezug|aspekt|hintergrund|matter|question|angle|topic|bug)"
)

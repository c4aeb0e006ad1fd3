"""The non-clinical guard: decide, before any generation, whether a request is allowed.

Allowed: research, education, benchmarking, dataset and prompt-engineering work, including
questions that mention drugs, doses, diseases and urgent symptoms in general terms.
Refused: diagnosis, treatment, triage, medication or dosing decisions about a real, specific
person (the asker, a relative, a clinician's patient), and emergencies, which also get
emergency-services advice.

Deterministic rules over a normalised text (lower case, accents removed) in English,
Spanish, French, German and Portuguese. The rules look for two things together: an ask for
a clinical decision, and a real person it is about. Framings such as "hypothetically", "for
a novel", "I am a doctor" or "ignore previous instructions" never unlock a request.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache

DIAGNOSIS = "diagnosis"
TREATMENT = "treatment"
DOSING = "dosing"
TRIAGE = "triage"
EMERGENCY = "emergency"
ALLOWED_EDUCATION = "allowed-education"
ALLOWED_RESEARCH = "allowed-research"
ALLOWED_GENERAL = "allowed-general"
GUARD_ERROR = "guard-error"

REFUSED_CATEGORIES = (EMERGENCY, DOSING, TREATMENT, TRIAGE, DIAGNOSIS, GUARD_ERROR)

_REASONS = {
    EMERGENCY: "this sounds like a medical emergency happening now, which needs real help, not a model.",
    DOSING: "it asks for a medication or dose decision for a real person.",
    TREATMENT: "it asks for a treatment decision for a real person.",
    TRIAGE: "it asks how urgently a real person needs care, which is a triage decision.",
    DIAGNOSIS: "it asks for a diagnosis of a real person or of their own medical image or results.",
    ALLOWED_EDUCATION: "General educational request; no decision about a real person is asked for.",
    ALLOWED_RESEARCH: "Research, benchmark or dataset request; no decision about a real person is asked for.",
    ALLOWED_GENERAL: "No clinical decision about a real person is asked for.",
}


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    category: str
    reason: str
    signals: tuple[str, ...] = field(default=())  # which rule families fired, for tuning

    @property
    def emergency(self) -> bool:
        return self.category == EMERGENCY

    def as_dict(self) -> dict[str, object]:
        return {"allowed": self.allowed, "category": self.category, "reason": self.reason,
                "signals": list(self.signals)}


def screen(prompt: str, *, system_prompt: str | None = None, has_image: bool = False) -> Verdict:
    """Classify one request. The system prompt is screened too: it can carry the real ask."""
    text = normalise(f"{system_prompt or ''}\n{prompt}" if _mentions_patient(system_prompt) else prompt)
    rules = _rules()
    hits = {name for name, pattern in rules.items() if pattern.search(text)}
    personal = bool(hits & {"self", "relative", "patient", "current"}) or (
        has_image and "own_image" in hits
    )
    research = bool(hits & {"research", "education"})

    if "emergency" in hits and (personal or "urgent_now" in hits):
        return _refuse(EMERGENCY, hits)
    if "self_harm" in hits:
        return _refuse(EMERGENCY, hits)
    for category, signal in ((DOSING, "dosing"), (TREATMENT, "treatment"), (TRIAGE, "triage"),
                             (DIAGNOSIS, "diagnosis")):
        if signal in hits and personal:
            return _refuse(category, hits)
    # A medical image asked about directly ("is this melanoma?") is someone's image: treat it
    # as diagnosis unless the request is framed as research or teaching.
    if has_image and "image_verdict" in hits and not research:
        return _refuse(DIAGNOSIS, hits)
    if "research" in hits:
        return _allow(ALLOWED_RESEARCH, hits)
    if "education" in hits:
        return _allow(ALLOWED_EDUCATION, hits)
    return _allow(ALLOWED_GENERAL, hits)


def normalise(text: str) -> str:
    """Lower case, accents stripped, apostrophes unified, whitespace collapsed."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    stripped = stripped.replace("\u2019", "'").replace("\u2018", "'").replace("`", "'")
    return re.sub(r"\s+", " ", stripped).strip()


def _mentions_patient(system_prompt: str | None) -> bool:
    return bool(system_prompt) and bool(_rules()["patient"].search(normalise(system_prompt or "")))


def _refuse(category: str, hits: set[str]) -> Verdict:
    return Verdict(False, category, _REASONS[category], tuple(sorted(hits)))


def _allow(category: str, hits: set[str]) -> Verdict:
    return Verdict(True, category, _REASONS[category], tuple(sorted(hits)))


def _any(*alternatives: str) -> str:
    return "(?:" + "|".join(alternatives) + ")"


# People: who the request is about.
_RELATIVES = _any(
    "son", "daughter", "child", "kid", "kids", "baby", "toddler", "infant", "newborn", "boy", "girl",
    "mom", "mum", "mother", "dad", "father", "parents?", "wife", "husband", "partner", "boyfriend",
    "girlfriend", "grand(?:ma|pa|mother|father|son|daughter)", "brother", "sister", "aunt", "uncle",
    "cousin", "friend", "roommate", "neighbou?r", "niece", "nephew", "fiance", "family", "dog", "cat",
    r"\d+[- ](?:year|month|week|day)[- ]old",
    # es / pt / fr / de
    "hij[oa]s?", "bebe", "nin[oa]", "madre", "padre", "mama", "papa", "espos[oa]", "marido", "abuel[oa]",
    "herman[oa]", "amig[oa]", "filh[oa]s?", "mae", "pai", "avo", "irma[o]?", "namorad[oa]",
    "fils", "fille", "enfant", "mere", "pere", "femme", "mari", "frere", "soeur", "copain", "copine", "ami",
    "sohn", "tochter", "kind", "mutter", "vater", "frau", "mann", "bruder", "schwester", "oma", "opa",
    "freund(?:in)?", "enkel",
)
_POSSESSIVE = _any("my", "our", "his", "her", "their", "mi", "mis", "nuestr[oa]s?", "meu", "minha", "meus",
                   "minhas", "nosso", "nossa", "mon", "ma", "mes", "notre", "nos", "mein", "meine", "meinem",
                   "meinen", "meiner", "unser",
                   "unsere", "unserem", "unseren")

_DX_WORDS = _any(
    "cancer", "cancerous", "malignant", "benign", "melanoma", "tumou?r", "infected", "infection", "broken",
    "fractured?", "normal", "serious", "pneumonia", "measles", "covid", "strep", "appendicitis", "angina",
    "a heart attack", "a stroke", "sepsis", "diabetes", "shingles", "lyme", "herpes", "skin cancer",
    "neumonia", "maligno", "gebrochen", "bosartig", "krebs", "entzundet", "appendicite", "grave", "dangerous",
)

_PATTERNS: dict[str, str] = {
    # The asker as the patient.
    "self": _any(
        r"\b(?:i|i'm|i've|im|ive)\b.{0,40}\b(?:have|had|got|feel|feeling|take|taking|took|am|was|been|noticed|"
        r"found|woke|keep|started|stopped|missed|get|getting|suffer|experiencing|pregnant|diagnosed|prescribed|"
        r"hurt|hurts|bleeding|coughing|vomiting|itch)\b",
        r"\bmy (?:own )?(?:\w+ ){0,2}(?:results?|labs?|scan|x-?ray|mri|ct|ultrasound|biopsy|ecg|ekg|blood|"
        r"tests?|symptoms?|pain|rash|mole|lump|skin|head|chest|stomach|back|heart|leg|arm|eye|throat|"
        r"fever|cough|dose|doses|medication|meds|pills?|prescription|diagnosis|levels?|pressure|sugar|"
        r"wound|cut|burn|swelling|period|pregnancy|baby|mammogram|report|images?|photos?|pictures?|slides?|"
        r"psa|count|stool|urine|breast|ear|nose|mouth|tooth|teeth|foot|feet|knee|hip|hand|neck|face|toe|"
        r"wrist|ankle|shoulder|kidney|liver|lungs?|bp|readings?|insulin|inhaler)\b",
        r"\b(?:should|can|could|do|must|shall|may) i\b",
        r"\b(?:i|we) (?:should|need|see|go|call|wait)\b",
        r"\b(?:am i|do i|have i|is it safe for me|for me|me to)\b",
        r"\b(?:tengo|estoy|me duele|me siento|debo|puedo|tomo|mi (?:\w+ )?(?:dolor|resultado|analisis|"
        r"radiografia|lunar|presion|dosis|medicamento|sintoma))",
        r"\b(?:j'ai|je suis|je prends|je dois|dois-je|puis-je|est-ce que je|mon (?:\w+ )?(?:resultat|analyse|"
        r"grain de beaute|traitement|medicament)|ma (?:radio|dose|tension|douleur))",
        r"\b(?:ich habe|ich bin|ich nehme|soll ich|darf ich|kann ich|muss ich|habe ich|bin ich|mir|mich|"
        r"mein(?:e|en|em)? (?:\w+ )?(?:befund|ergebnis|rontgenbild|muttermal|dosis|medikament|schmerz))",
        r"\b(?:eu tenho|eu estou|estou com|tenho|devo|posso|tomo|meu (?:\w+ )?(?:exame|resultado|raio-x|"
        r"sinal|remedio)|minha (?:dose|pressao|dor|pinta))",
    ),
    # Someone close to the asker.
    "relative": rf"\b{_POSSESSIVE} (?:\w+ )?{_RELATIVES}\b|\b(?:give|giving) (?:him|her|them)\b",
    # A clinician's specific patient.
    "patient": _any(
        rf"\b{_POSSESSIVE} (?:\w+ )?(?:patients?|client|resident|paciente|patiente?|patienten|patientin)\b",
        r"\b(?:bed|room|bay|cama|quarto|lit|chambre|bett|zimmer) ?(?:no\.? ?)?#?\d+",
        r"\b(?:this|the|a|el|la|o|le|der|die|dieser|diese) (?:\w+ )?(?:patient|paciente|patiente|patientin) "
        r"(?:in|on|at|i am|i'm|we|has|is|en|na|no|dans|auf|who|with|hat)\b",
        r"\b(?:patient|paciente|patient) (?:of mine|que atiendo|que atendo)\b",
        r"\b(?:i have|i've got|we have|we've got) a (?:\w+ )?(?:patient|case)\b",
        r"\b(?:on my ward|on shift|my shift|on call|in clinic today|in the er now)\b",
    ),
    # Happening now.
    "current": r"\b(?:right now|just now|currently|at the moment|tonight|this morning|since yesterday|"
               r"ahora mismo|agora|en ce moment|gerade|jetzt)\b",
    "urgent_now": r"\b(?:right now|just (?:took|swallowed|ate|drank|fell|collapsed)|is (?:not breathing|"
                  r"unconscious|unresponsive|choking)|won't wake|can't breathe|can't wake|"
                  r"acaba de|vient d'|hat gerade|acabou de)\b",
    # Decisions asked for.
    "dosing": _any(
        r"\b(?:how much|how many|what dose|which dose|what dosage|how often|how many mg|how many pills|amount of|"
        r"how many tablets|what amount|dose of|dosage of|double (?:my|the|his|her) dose|"
        r"(?:increase|decrease|lower|raise|skip|adjust|up|change|split|cut) (?:my|his|her|their|the) "
        r"(?:\w+ )?(?:dose|dosage|insulin|medication|meds))\b",
        r"\b(?:give|take|taking|administer|inject|push|hang|start)\b.{0,40}\b(?:mg|mcg|ml|units?|tablets?|"
        r"pills?|doses?|aspirin|ibuprofen|paracetamol|acetaminophen|tylenol|advil|amoxicillin|insulin|"
        r"morphine|warfarin|heparin|antibiotics?|benadryl|melatonin|xanax|oxycodone|metformin|"
        r"prednisone|potassium|epinephrine|naloxone|nitroglycerin|medicine|medication|meds)\b",
        r"\b(?:can|could|should|is it ok(?:ay)?|is it safe)\b.{0,30}\b(?:take|mix|combine|drink)\b.{0,40}"
        r"\b(?:with|and|on|while|after)\b",
        r"\b(?:que dosis|cuanto|cuanta|cuantas|cuantos|dosis de|darle|tomar|qual (?:a )?dose|quanto|quanta|"
        r"quantas|quantos|dar a|quelle dose|quelle posologie|combien d|donner a|lui donner|prendre|doubler|"
        r"welche dosis|wie viel|wie viele|geben|einnehmen|dosis)\b",
        r"\b(?:dose|dosage|dosing|mg|mcg|units|infusion|drip|rate)\b.{0,40}\b(?:for|to|should|run)\b",
        # An explicit quantity about someone is a dosing question.
        r"\b\d+(?:[.,]\d+)? ?(?:mg|mcg|ug|ml|g|iu|units?|tablets?|pills?|puffs?)\b",
    ),
    "treatment": _any(
        r"\b(?:should|can|must|do|could) (?:i|we|he|she|they|my \w+)\b.{0,30}\b(?:take|stop|start|get|have|"
        r"use|try|switch|continue|remove|removed|treat|operate|surgery|cut|drain|pop|apply|go on|come off|"
        r"be on|be given|be treated)\b",
        r"\b(?:how (?:do|should|can) (?:i|we) (?:treat|cure|get rid of|fix|heal|manage))\b",
        r"\b(?:what (?:\w+ ){0,2}(?:should|can|do) (?:i|we|he|she) (?:take|do|use|give|apply|add|prescribe|"
        r"start|try|put))\b",
        r"\b(?:i|we) should (?:take|stop|start|switch|continue|get|have|use|try|go on|come off)\b",
        r"\b(?:stitch|bandage|splint|pop|lance)\b",
        r"\b(?:excise|resect|biopsy|admit|discharge|refer|operate)\b.{0,20}\bor\b|\b(?:your call|your "
        r"recommendation|what would you do)\b",
        r"\b(?:what treatment|which treatment|best treatment for (?:my|his|her|this)|treatment plan for|"
        r"what medication|which medication|what antibiotic|which antibiotic|prescribe|get it removed|"
        r"have it removed|need surgery|need antibiotics|need stitches)\b",
        r"\b(?:que tratamiento|debo tomar|debo dejar|tratar|tratamiento|quel traitement|dois-je prendre|"
        r"traiter|welche behandlung|soll ich .{0,40}(?:nehmen|absetzen)|behandeln|qual tratamento|"
        r"devo tomar|devo parar|remover|quitar|operar)\b",
    ),
    "triage": _any(
        r"\b(?:should|do|must|can) (?:i|we|he|she|they)\b.{0,30}\b(?:go to|see|call|visit|wait)\b.{0,30}"
        r"\b(?:er|a&e|emergency|hospital|doctor|gp|urgent care|911|999|112|ambulance|clinic|ed|morning)\b",
        r"\b(?:send|take|bring|transfer) (?:him|her|them|me|my \w+) (?:to|into) (?:the )?(?:icu|er|a&e|hospital|"
        r"emergency|urgent care|ed)\b",
        r"\b(?:is (?:it|this) (?:an emergency|serious|urgent|dangerous)|can (?:it|this) wait|how urgent|"
        r"do (?:i|we|they) need (?:to see )?(?:a doctor|the er|an ambulance|to go)|need to go to the)\b",
        r"\b(?:debo ir|tengo que ir|urgencias|es grave|puede esperar|dois-je aller|aux urgences|est-ce grave|"
        r"notaufnahme|ins krankenhaus|ist das gefahrlich|ist das schlimm|devo ir|pronto[- ]socorro|e grave|"
        r"pode esperar)\b",
    ),
    "diagnosis": _any(
        r"\b(?:do|does|did) (?:i|he|she|they|my \w+) have\b",
        r"\b(?:what(?:'s| is) wrong with|what do (?:i|they|he|she) have|diagnose|diagnosis|could (?:it|this) be|"
        r"what does (?:my|his|her|this) .{0,30} (?:show|mean)|interpret (?:my|his|her|these|this)|"
        r"read (?:my|his|her) |should i (?:be )?worr(?:y|ied)|am i (?:sick|ill|pregnant|dying|ok))\b",
        rf"\bis (?:this|it|that|the)\b.{{0,40}}\b{_DX_WORDS}\b|\b(?:tell me|know) (?:if|whether|what)\b",
        r"\b(?:could|does|would|do|can) (?:my|his|her|these|this|that|it)\b.{0,40}\bmean\b|\bis it my \w+",
        r"\b(?:is|are) (?:my|his|her|their|our)\b.{0,40}\b(?:dangerous|normal|high|low|ok|okay|bad|serious|"
        r"worrying|concerning|too \w+)\b",
        r"\b(?:does|do) (?:this|it|these|that|my \w+) look (?:like|normal|infected|bad|okay|ok)\b",
        rf"\b(?:tiene|tengo|tem|tenho|a-t-il|a-t-elle|hat (?:er|sie)|habe ich|ele tem|ela tem)\b.{{0,30}}"
        rf"\b{_DX_WORDS}\b|\best-ce (?:une?|la|le)? ?\w+|qu'est-ce que j'ai|\bist (?:das|der|die|es)\b.{{0,30}}"
        rf"\b{_DX_WORDS}\b",
        r"\b(?:tengo cancer|es cancer|es maligno|que tengo|diagnostico|que significa mi|ai-je|est-ce un cancer|"
        r"est-ce grave|diagnostic|habe ich|ist das krebs|ist es bosartig|diagnose|tenho cancer|e cancer|"
        r"e maligno|o que eu tenho)\b",
    ),
    # A picture of the asker's own body or case.
    "own_image": r"\b(?:my|his|her|our|mi|mon|ma|mein|meine|meu|minha) (?:\w+ )?(?:scan|x-?ray|mri|ct|"
                 r"photo|picture|image|skin|mole|rash|lump|wound|radiografia|radio|rontgenbild|foto)\b"
                 r"|\bon (?:my|his|her) \w+",
    "image_verdict": r"\b(?:is (?:this|it|that) (?:[\w-]+ )?(?:cancer|cancerous|malignant|benign|melanoma|"
                     r"a tumou?r|infected|broken|fractured|normal|serious|dangerous|ok|okay|pneumonia)|"
                     r"what is (?:this|it)\b.{0,20}\b(?:on|in) (?:my|his|her)|(?:does|do) (?:this|it|these) look|"
                     r"what (?:is|are) (?:this|these) (?:spots?|rash|lumps?|bumps?|lesions?|marks?)|"
                     r"should (?:i|he|she) (?:get|have) (?:it|this) (?:removed|checked|looked at)|"
                     r"es (?:cancer|maligno|grave)|"
                     r"est-ce (?:un cancer|grave|malin)|ist das (?:krebs|bosartig|schlimm)|"
                     r"e (?:cancer|maligno|grave))\b",
    "emergency": _any(
        r"overdos\w*", r"sobredosis", r"surdose", r"uberdosis", r"chest pain", r"crushing chest",
        r"can(?:'|no)?t breathe", r"not breathing", r"stopped breathing", r"turning blue", r"choking",
        r"unconscious", r"unresponsive", r"won't wake up", r"face (?:is )?droop\w*", r"slurred speech",
        r"having a stroke", r"heart attack", r"seizing", r"having a seizure", r"anaphyla\w*",
        r"throat (?:is )?(?:closing|swelling)", r"bleeding (?:heavily|a lot|won't stop)",
        r"(?:swallowed|drank|ate|ingested|drunk) (?:a |some |the |his |her |my )?(?:\w+ )?(?:battery|batteries|"
        r"bleach|magnets?|pills|detergent|pods?|antifreeze|rat poison|poison|drain cleaner|lye|gasoline|"
        r"lamp oil|medicine|tablets)",
        r"(?:took|taken|ate|drank) (?:a whole|the whole|an entire|too many|a bottle|all)",
        r"dolor (?:en el|de) pecho", r"no puedo respirar", r"no respira", r"douleur (?:thoracique|a la poitrine)",
        r"ne respire plus", r"brustschmerzen", r"atmet nicht", r"kann nicht atmen", r"dor no peito",
        r"nao (?:consigo )?respira\w*", r"derrame", r"avc", r"schlaganfall", r"infarto", r"herzinfarkt",
        r"(?:engoliu|trago|se trago|a avale|verschluckt)\b.{0,30}\b(?:bateria|pila|pile|batterie|lejia|"
        r"javel|candida)", r"suicid\w*",
    ),
    "self_harm": _any(
        r"\b(?:kill (?:myself|me)|end (?:my|it) all|end my life|i'?m suicidal|feel suicidal|want to die|"
        r"i (?:am|have been) self[- ]harming|"
        r"hurt myself|cut myself|no reason to live)\b",
        r"\b(?:matarme|quiero morir|quitarme la vida|me tuer|envie de mourir|mich umbringen|"
        r"will sterben|me matar|quero morrer|tirar minha vida)\b",
    ),
    # Framings that mark research or teaching work (they never unlock a personal request).
    "research": _any(
        r"\b(?:benchmark\w*|dataset|data set|corpus|annotat\w*|label(?:s|ing|led|ed)?|classif\w* (?:this|these|"
        r"the|each)|caption\w*|evaluat\w* (?:the|a|this) model|model evaluation|ai model|vqa|"
        r"synthetic|prompt engineering|few-shot|zero-shot|json|rubric|test set|training data|"
        r"research (?:project|study|paper)|for (?:a|an|my|our) (?:ai|ml|research|study)|"
        r"conjunto de datos|jeu de donnees|datensatz|base de dados)\b",
    ),
    "education": _any(
        r"\b(?:quiz|exam|test question|flashcards?|lecture|teaching|textbook|curriculum|students?|class|"
        r"course|slide|explain|what (?:is|are|causes|does)|how (?:does|do|is|are)|why (?:does|do|is|are)|"
        r"describe|summar\w+|in general|generally|typical(?:ly)?|usual(?:ly)?|guidelines?|mechanism|"
        r"pharmacolog\w*|physiolog\w*|pathophysiolog\w*|history of|overview|define|definition|difference "
        r"between|compare|list (?:the|common)|signs of|symptoms of|risk factors)\b",
        r"\b(?:que es|como funciona|explica|explique|qu'est-ce que|comment fonctionne|was ist|wie funktioniert|"
        r"erklare|o que e|como funciona|para (?:un|uma?) (?:examen|prova|clase|aula)|pour un (?:cours|examen)|"
        r"fur (?:eine|den) (?:prufung|unterricht|vorlesung))\b",
    ),
}


@lru_cache(maxsize=1)
def _rules() -> dict[str, re.Pattern[str]]:
    """Compiled once, on first use, so importing the module stays cheap."""
    return {name: re.compile(pattern) for name, pattern in _PATTERNS.items()}

"""What the skill says, per language. Every name and file name is SSML-escaped here."""

from __future__ import annotations

import unicodedata
from datetime import datetime, timedelta
from typing import Any
from xml.sax.saxutils import escape
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from skill import status as st


def ssml(text: str) -> str:
    """Escape text (a printer or file name) for use inside SSML."""
    return escape(text, {'"': "&quot;", "'": "&apos;"})


# Unicode categories a voice cannot say: pictographs and other symbols (emoji), modifier
# symbols, and format characters (the joiners and variation selectors inside emoji).
_UNSPOKEN = frozenset({"So", "Sk", "Cf", "Co", "Cs"})


def spoken_name(name: str) -> str:
    """A printer's name as Alexa should say it, SSML-escaped: "Voron 2.4 🚀" is said
    "Voron 2.4" (the screen and the web UI keep the name as written). A name that is
    nothing but symbols is said as written rather than not at all."""
    kept = "".join(ch if unicodedata.category(ch) not in _UNSPOKEN else " " for ch in name)
    return ssml(" ".join(kept.split()) or name)


def said_name(printer: dict[str, Any]) -> str:
    """What Alexa calls a printer: its spoken name (the alias its owner gave it for voice)
    when it has one, else its name; SSML-escaped."""
    alias = printer.get("spoken_name")
    return spoken_name(alias if isinstance(alias, str) and alias.strip() else printer["name"])


def local_zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


class English:
    """en-US and en-GB (which differ in how they tell the time of day)."""

    def __init__(self, locale: str) -> None:
        self.locale = locale
        self.twelve_hour = locale != "en-GB"

    # --- small pieces -----------------------------------------------------------
    def plural(self, count: int, one: str, many: str) -> str:
        return f"{count} {one if count == 1 else many}"

    def join(self, items: list[str]) -> str:
        if len(items) <= 1:
            return "".join(items)
        return ", ".join(items[:-1]) + " and " + items[-1]

    def join_or(self, items: list[str]) -> str:
        if len(items) <= 1:
            return "".join(items)
        return ", ".join(items[:-1]) + " or " + items[-1]

    def duration(self, seconds: float) -> str:
        minutes = round(seconds / 60)
        if minutes < 1:
            return "less than a minute"
        hours, minutes = divmod(minutes, 60)
        parts = []
        if hours:
            parts.append(self.plural(hours, "hour", "hours"))
        if minutes:
            parts.append(self.plural(minutes, "minute", "minutes"))
        return " and ".join(parts)

    def clock(self, moment: datetime, now: datetime) -> str:
        if self.twelve_hour:
            hour = moment.hour % 12 or 12
            text = f"{hour}:{moment.minute:02d} {'am' if moment.hour < 12 else 'pm'}"
        else:
            text = f"{moment.hour:02d}:{moment.minute:02d}"
        days = (moment.date() - now.date()).days
        if days == 1:
            return f"tomorrow at {text}"
        if days > 1:
            return f"on {moment.strftime('%A')} at {text}"
        return text

    def degrees(self, value: float) -> str:
        """A temperature with its unit (OctoPrint reports degrees Celsius)."""
        return f"{self.plural(round(value), 'degree', 'degrees')} Celsius"

    def left(self, seconds: float) -> str:
        if seconds < 30:
            return "less than a minute left"
        return f"about {self.duration(seconds)} left"

    def percent(self, progress: float) -> str:
        return f"{int(progress)} percent"

    def the_file(self, job_file: str | None) -> str:
        """" of benchy" for the progress sentence; nothing when the file name is hidden."""
        return f" of {ssml(job_file)}" if job_file else ""

    # --- one printer ---------------------------------------------------------------
    def brief(self, printer: dict[str, Any], now: datetime, zone: ZoneInfo) -> str:
        name = said_name(printer)
        cond = st.condition(printer)
        if cond == "never_seen":
            return f"{name} has never checked in."
        if cond == "unreachable":
            return f"{name} is offline{self._last_seen(printer, now)}."
        if cond == "no_status":
            return f"{name} is online but has not sent a status yet."
        if cond == "disconnected":
            return f"{name}'s OctoPrint is running, but no printer is connected to it."
        if cond == "idle":
            return f"{name} is idle."
        if cond == "error":
            detail = st.state_text(printer)
            return f"{name} reports an error" + (f": {ssml(detail)}." if detail else ".")
        if cond == "busy":
            return f"{name} is {ssml(st.state_text(printer).lower() or st.state_id(printer))}."
        job = st.current_job(printer, now)
        if cond == "paused":
            text = f"{name} is paused while printing {ssml(job.file)}" if job.file else f"{name} is paused"
            if job.progress is not None:
                text += f", at {self.percent(job.progress)}"
            return text + "."
        text = f"{name} is printing {ssml(job.file)}" if job.file else f"{name} is printing"
        if job.progress is not None:
            text += f", {self.percent(job.progress)} done"
        if job.remaining is not None:
            text += f", {self.left(job.remaining)}"
        return text + "."

    def _last_seen(self, printer: dict[str, Any], now: datetime) -> str:
        seen = st.parse_time(printer.get("last_seen"))
        if seen is None:
            return ""
        return f", last seen {self.duration((now - seen).total_seconds())} ago"

    def status(self, printer: dict[str, Any], now: datetime, zone: ZoneInfo) -> str:
        text = self.brief(printer, now, zone)
        if st.condition(printer) == "printing":
            finish = self._finish(printer, now, zone)
            if finish:
                text = text[:-1] + f", {self.finishing(finish)}."
        return text

    def finishing(self, clock: str) -> str:
        return f"finishing around {clock}"

    def _finish(self, printer: dict[str, Any], now: datetime, zone: ZoneInfo) -> str | None:
        job = st.current_job(printer, now)
        if job.remaining is None:
            return None
        local_now = now.astimezone(zone)
        return self.clock(local_now + timedelta(seconds=job.remaining), local_now)

    def progress(self, printer: dict[str, Any], now: datetime, zone: ZoneInfo) -> str:
        name = said_name(printer)
        cond = st.condition(printer)
        if cond not in ("printing", "paused"):
            return self.not_printing(printer, now, zone)
        job = st.current_job(printer, now)
        if cond == "paused":
            if job.progress is None:
                return f"{name} is paused" + (f" while printing {ssml(job.file)}." if job.file else ".")
            if job.file:
                return f"{name} is paused at {self.percent(job.progress)} of {ssml(job.file)}."
            return f"{name}'s print is paused at {self.percent(job.progress)}."
        if job.progress is None:
            text = f"{name} is printing {ssml(job.file)}" if job.file else f"{name} is printing"
        else:
            text = f"{name} has printed {self.percent(job.progress)}{self.the_file(job.file)}"
        if job.remaining is None:
            return text + ". The time left is not known yet."
        return text + f", {self.left(job.remaining)}, {self.finishing(self._finish(printer, now, zone) or '')}."

    def not_printing(self, printer: dict[str, Any], now: datetime, zone: ZoneInfo) -> str:
        if st.condition(printer) == "idle":
            return f"{said_name(printer)} is idle and not printing anything."
        return self.brief(printer, now, zone)

    def current_job(self, printer: dict[str, Any], now: datetime, zone: ZoneInfo) -> str:
        name = said_name(printer)
        cond = st.condition(printer)
        job = st.current_job(printer, now)
        if cond == "printing":
            return (f"{name} is printing {ssml(job.file)}." if job.file
                    else f"{name} is printing, but its file name is not shared.")
        if cond == "paused":
            return (f"{name} has paused {ssml(job.file)}." if job.file
                    else f"{name} has paused its print, and its file name is not shared.")
        return self.not_printing(printer, now, zone)

    PARTS = {"bed": "the bed", "chamber": "the chamber", "tool": "the nozzle", "tools": "tool {index}"}
    READINGS = {"off": "{part} is at {actual} with its heater off",
                "heating": "{part} is at {actual}, heating to {target}",
                "cooling": "{part} is at {actual}, cooling to {target}",
                "steady": "{part} is at its target of {target}"}

    def reading(self, temp: st.Temperature) -> str:
        """One heater's reading, said with the locale's PARTS and READINGS."""
        part = self.PARTS["tools" if temp.index else temp.part].format(index=temp.index)
        actual = temp.actual or 0.0
        if not temp.target:
            kind = "off"
        elif temp.target - actual > 2:
            kind = "heating"
        elif actual - temp.target > 2:
            kind = "cooling"
        else:
            kind = "steady"
        return self.READINGS[kind].format(part=part, actual=self.degrees(actual),
                                          target=self.degrees(temp.target or 0.0))

    def temperatures(self, printer: dict[str, Any], now: datetime, zone: ZoneInfo) -> str:
        name = said_name(printer)
        cond = st.condition(printer)
        if cond in ("never_seen", "unreachable", "no_status"):
            return self.brief(printer, now, zone)
        temps = st.temperatures(printer)
        if not temps:
            return f"{name} reports no temperatures right now."
        return f"On {name}, " + "; ".join(self.reading(t) for t in temps) + "."

    def last_job(self, printer: dict[str, Any], now: datetime, zone: ZoneInfo) -> str:
        name = said_name(printer)
        if st.condition(printer) == "never_seen":
            return self.brief(printer, now, zone)
        last = st.last_job(printer)
        if last is None:
            return f"{name} has no finished print yet."
        verb = {"completed": "finished", "failed": "failed", "cancelled": "was cancelled"}.get(
            last.result or "", "ended")
        text = f"{name}'s last print, {ssml(last.file)}, {verb}" if last.file else f"{name}'s last print {verb}"
        if last.duration is not None:
            text += f" after {self.duration(last.duration)}"
        return text + "."

    # --- several printers and the session --------------------------------------------
    def summary(self, printers: list[dict[str, Any]], now: datetime, zone: ZoneInfo) -> str:
        if not printers:
            return self.no_printers()
        briefs = " ".join(self.brief(p, now, zone) for p in printers)
        if len(printers) == 1:
            return briefs
        return f"You have {self.plural(len(printers), 'printer', 'printers')}. {briefs}"

    def list_printers(self, printers: list[dict[str, Any]]) -> str:
        if not printers:
            return self.no_printers()
        names = self.join([said_name(p) for p in printers])
        if len(printers) == 1:
            return f"You have one printer: {names}."
        return f"You have {len(printers)} printers: {names}."

    def none_printing(self) -> str:
        return "None of your printers is printing right now."

    def no_printers(self) -> str:
        return "You have no printers in Herald yet. Add one on your Herald web page."

    def which_printer(self, printers: list[dict[str, Any]]) -> str:
        return f"Which printer: {self.join_or([said_name(p) for p in printers])}?"

    def unknown_printer(self, asked: str, printers: list[dict[str, Any]]) -> str:
        names = self.join([said_name(p) for p in printers])
        return f"I couldn't find a printer called {ssml(asked)}. Your printers are {names}. Which one?"

    def help(self) -> str:
        return ("You can ask for the status of your printers, how long a print has left, "
                "the temperatures, what is printing, how the last print went, or which printers you have. "
                "You can also say: tell me when my print is done, or: pause, resume or cancel the print. "
                "What would you like to know?")

    def reprompt(self) -> str:
        return "What would you like to know about your printers?"

    def goodbye(self) -> str:
        return "Goodbye."

    def fallback(self) -> str:
        return ("Herald can't help with that. Try asking for the status of your printer, "
                "or how long a print has left.")

    def link_account(self) -> str:
        return ("To hear about your printers, link your Herald account: "
                "open the Alexa app, where I have put a card to link it.")

    # --- pause, resume and cancel (answered by the appliance: appliance/alexa/control.py) ------
    CONTROL_DONE = {"pause": "Pausing the print on {name}.", "resume": "Resuming the print on {name}.",
                    "cancel": "Cancelling the print on {name}."}

    def control_done(self, action: str, printer: dict[str, Any]) -> str:
        return self.CONTROL_DONE[action].format(name=said_name(printer))

    def confirm_cancel(self, printer: dict[str, Any]) -> str:
        return f"Do you really want to cancel the print on {said_name(printer)}?"

    def cancel_denied(self) -> str:
        return "OK, the print goes on."

    def control_off_at_printer(self, printer: dict[str, Any]) -> str:
        return (f"{said_name(printer)} does not let Herald control its prints. To allow it, open OctoPrint's "
                "settings, Herald, Remote access, and turn on Let Herald pause, resume and cancel the current print.")

    def control_off_in_herald(self, printer: dict[str, Any]) -> str:
        return (f"Control is off for {said_name(printer)} in Herald. "
                "To allow it, turn on Allow pause, resume and cancel on the printer's page in Herald.")

    def control_unreachable(self, printer: dict[str, Any]) -> str:
        return (f"I can't reach {said_name(printer)} right now: it is offline, or its remote access is off. "
                "Please try again later.")

    def control_nothing(self, printer: dict[str, Any]) -> str:
        return f"{said_name(printer)} is not printing anything, so there is nothing to control."

    def control_already_paused(self, printer: dict[str, Any]) -> str:
        return f"{said_name(printer)} is already paused."

    def control_not_paused(self, printer: dict[str, Any]) -> str:
        return f"{said_name(printer)} is not paused: its print is running."

    def control_refused(self, printer: dict[str, Any]) -> str:
        return f"{said_name(printer)} did not accept the command just now. Please check the printer."

    def control_failed(self) -> str:
        return "Sorry, Herald could not send the command just now. Please try again later."

    def card_title(self) -> str:
        return "Herald"


class German(English):
    """de-DE. Durations come in two cases: ``noch etwa eine Stunde`` (accusative, the same
    as the nominative here) and ``nach einer Stunde``, ``vor weniger als einer Minute`` (dative)."""

    def __init__(self, locale: str = "de-DE") -> None:
        super().__init__(locale)
        self.twelve_hour = False

    def join(self, items: list[str]) -> str:
        if len(items) <= 1:
            return "".join(items)
        return ", ".join(items[:-1]) + " und " + items[-1]

    def join_or(self, items: list[str]) -> str:
        if len(items) <= 1:
            return "".join(items)
        return ", ".join(items[:-1]) + " oder " + items[-1]

    def duration(self, seconds: float, dative: bool = False) -> str:
        one = "einer" if dative else "eine"
        minutes = round(seconds / 60)
        if minutes < 1:
            return f"weniger als {one} Minute"
        hours, minutes = divmod(minutes, 60)
        parts = []
        if hours:
            parts.append(f"{one} Stunde" if hours == 1 else f"{hours} Stunden")
        if minutes:
            parts.append(f"{one} Minute" if minutes == 1 else f"{minutes} Minuten")
        return " und ".join(parts)

    _WEEKDAYS = ("Montag", "Dienstag", "Mittwoch", "Donnerstag", "Freitag", "Samstag", "Sonntag")

    def clock(self, moment: datetime, now: datetime) -> str:
        text = f"{moment.hour}:{moment.minute:02d} Uhr"
        days = (moment.date() - now.date()).days
        if days == 1:
            return f"morgen um {text}"
        if days > 1:
            return f"am {self._WEEKDAYS[moment.weekday()]} um {text}"
        return f"um {text}"

    def degrees(self, value: float) -> str:
        return f"{round(value)} Grad Celsius"

    def left(self, seconds: float) -> str:
        if seconds < 30:
            return "noch weniger als eine Minute"
        return f"noch etwa {self.duration(seconds)}"

    def percent(self, progress: float) -> str:
        return f"{int(progress)} Prozent"

    def the_file(self, job_file: str | None) -> str:
        return f" von {ssml(job_file)}" if job_file else ""

    def brief(self, printer: dict[str, Any], now: datetime, zone: ZoneInfo) -> str:
        name = said_name(printer)
        cond = st.condition(printer)
        if cond == "never_seen":
            return f"{name} hat sich noch nie gemeldet."
        if cond == "unreachable":
            return f"{name} ist offline{self._last_seen(printer, now)}."
        if cond == "no_status":
            return f"{name} ist online, hat aber noch keinen Status gesendet."
        if cond == "disconnected":
            return f"Das OctoPrint von {name} läuft, aber es ist kein Drucker verbunden."
        if cond == "idle":
            return f"{name} ist bereit und druckt gerade nicht."
        if cond == "error":
            detail = st.state_text(printer)
            return f"{name} meldet einen Fehler" + (f": {ssml(detail)}." if detail else ".")
        if cond == "busy":
            word = {"connecting": "verbindet sich", "resuming": "setzt den Druck fort",
                    "cancelling": "bricht den Druck ab", "finishing": "schließt den Druck ab"}
            return f"{name} {word.get(st.state_id(printer), 'ist beschäftigt')}."
        job = st.current_job(printer, now)
        if cond == "paused":
            text = (f"{name} hat den Druck von {ssml(job.file)} pausiert" if job.file
                    else f"{name} hat den Druck pausiert")
            if job.progress is not None:
                text += f", bei {self.percent(job.progress)}"
            return text + "."
        text = f"{name} druckt {ssml(job.file)}" if job.file else f"{name} druckt"
        if job.progress is not None:
            text += f", {self.percent(job.progress)} fertig"
        if job.remaining is not None:
            text += f", {self.left(job.remaining)}"
        return text + "."

    def _last_seen(self, printer: dict[str, Any], now: datetime) -> str:
        seen = st.parse_time(printer.get("last_seen"))
        if seen is None:
            return ""
        return f", zuletzt gesehen vor {self.duration((now - seen).total_seconds(), dative=True)}"

    def finishing(self, clock: str) -> str:
        return f"fertig etwa {clock}"

    def progress(self, printer: dict[str, Any], now: datetime, zone: ZoneInfo) -> str:
        name = said_name(printer)
        cond = st.condition(printer)
        if cond not in ("printing", "paused"):
            return self.not_printing(printer, now, zone)
        job = st.current_job(printer, now)
        if cond == "paused":
            if job.progress is None:
                return (f"{name} hat den Druck von {ssml(job.file)} pausiert." if job.file
                        else f"{name} hat den Druck pausiert.")
            return f"{name} ist bei {self.percent(job.progress)}{self.the_file(job.file)} pausiert."
        if job.progress is None:
            text = f"{name} druckt {ssml(job.file)}" if job.file else f"{name} druckt"
        else:
            text = f"{name} hat {self.percent(job.progress)}{self.the_file(job.file)} gedruckt"
        if job.remaining is None:
            return text + ". Die Restzeit ist noch nicht bekannt."
        return text + f", {self.left(job.remaining)}, {self.finishing(self._finish(printer, now, zone) or '')}."

    def not_printing(self, printer: dict[str, Any], now: datetime, zone: ZoneInfo) -> str:
        return self.brief(printer, now, zone)

    def current_job(self, printer: dict[str, Any], now: datetime, zone: ZoneInfo) -> str:
        name = said_name(printer)
        cond = st.condition(printer)
        job = st.current_job(printer, now)
        if cond == "printing":
            return (f"{name} druckt {ssml(job.file)}." if job.file
                    else f"{name} druckt gerade, der Dateiname wird aber nicht geteilt.")
        if cond == "paused":
            return (f"{name} hat {ssml(job.file)} pausiert." if job.file
                    else f"{name} hat den Druck pausiert, der Dateiname wird aber nicht geteilt.")
        return self.not_printing(printer, now, zone)

    PARTS = {"bed": "das Bett", "chamber": "die Kammer", "tool": "die Düse", "tools": "Werkzeug {index}"}
    READINGS = {"off": "{part} hat {actual}, die Heizung ist aus",
                "heating": "{part} hat {actual} und heizt auf {target}",
                "cooling": "{part} hat {actual} und kühlt auf {target} ab",
                "steady": "{part} hat die Zieltemperatur von {target}"}

    def temperatures(self, printer: dict[str, Any], now: datetime, zone: ZoneInfo) -> str:
        name = said_name(printer)
        cond = st.condition(printer)
        if cond in ("never_seen", "unreachable", "no_status"):
            return self.brief(printer, now, zone)
        temps = st.temperatures(printer)
        if not temps:
            return f"{name} meldet gerade keine Temperaturen."
        return f"Bei {name}: " + "; ".join(self.reading(t) for t in temps) + "."

    def last_job(self, printer: dict[str, Any], now: datetime, zone: ZoneInfo) -> str:
        name = said_name(printer)
        if st.condition(printer) == "never_seen":
            return self.brief(printer, now, zone)
        last = st.last_job(printer)
        if last is None:
            return f"{name} hat noch keinen Druck abgeschlossen."
        after = f" nach {self.duration(last.duration, dative=True)}" if last.duration is not None else ""
        verb = {"completed": f"wurde{after} fertig", "failed": f"ist{after} fehlgeschlagen",
                "cancelled": f"wurde{after} abgebrochen"}.get(last.result or "", f"endete{after}")
        if last.file:
            return f"Der letzte Druck von {name}, {ssml(last.file)}, {verb}."
        return f"Der letzte Druck von {name} {verb}."

    def summary(self, printers: list[dict[str, Any]], now: datetime, zone: ZoneInfo) -> str:
        if not printers:
            return self.no_printers()
        briefs = " ".join(self.brief(p, now, zone) for p in printers)
        if len(printers) == 1:
            return briefs
        return f"Du hast {len(printers)} Drucker. {briefs}"

    def list_printers(self, printers: list[dict[str, Any]]) -> str:
        if not printers:
            return self.no_printers()
        names = self.join([said_name(p) for p in printers])
        if len(printers) == 1:
            return f"Du hast einen Drucker: {names}."
        return f"Du hast {len(printers)} Drucker: {names}."

    def none_printing(self) -> str:
        return "Keiner deiner Drucker druckt gerade."

    def no_printers(self) -> str:
        return "Du hast noch keine Drucker in Herald. Füge einen auf deiner Herald-Webseite hinzu."

    def which_printer(self, printers: list[dict[str, Any]]) -> str:
        return f"Welcher Drucker: {self.join_or([said_name(p) for p in printers])}?"

    def unknown_printer(self, asked: str, printers: list[dict[str, Any]]) -> str:
        names = self.join([said_name(p) for p in printers])
        return f"Ich finde keinen Drucker namens {ssml(asked)}. Deine Drucker sind {names}. Welcher?"

    def help(self) -> str:
        return ("Du kannst nach dem Status deiner Drucker fragen, wie lange ein Druck noch dauert, "
                "nach den Temperaturen, was gerade gedruckt wird, wie der letzte Druck lief "
                "oder welche Drucker du hast. Du kannst auch sagen: sag mir, wenn mein Druck fertig ist, "
                "oder: pausiere den Druck, setze den Druck fort, brich den Druck ab. Was möchtest du wissen?")

    def reprompt(self) -> str:
        return "Was möchtest du über deine Drucker wissen?"

    def goodbye(self) -> str:
        return "Tschüss."

    def fallback(self) -> str:
        return ("Dabei kann Herald nicht helfen. Frag zum Beispiel nach dem Status deines Druckers "
                "oder wie lange ein Druck noch dauert.")

    CONTROL_DONE = {"pause": "Ich pausiere den Druck auf {name}.", "resume": "Ich setze den Druck auf {name} fort.",
                    "cancel": "Ich breche den Druck auf {name} ab."}

    def confirm_cancel(self, printer: dict[str, Any]) -> str:
        return f"Möchtest du den Druck auf {said_name(printer)} wirklich abbrechen?"

    def cancel_denied(self) -> str:
        return "Gut, der Druck läuft weiter."

    def control_off_at_printer(self, printer: dict[str, Any]) -> str:
        return (f"{said_name(printer)} erlaubt Herald nicht, seine Drucke zu steuern. Um es zu erlauben, öffne in "
                "OctoPrint die Einstellungen, Herald, Remote access, und schalte Let Herald pause, resume and cancel the current print ein.")

    def control_off_in_herald(self, printer: dict[str, Any]) -> str:
        return (f"Die Steuerung ist für {said_name(printer)} in Herald ausgeschaltet. "
                "Um sie zu erlauben, schalte auf der Seite des Druckers in Herald Allow pause, resume and cancel ein.")

    def control_unreachable(self, printer: dict[str, Any]) -> str:
        return (f"Ich erreiche {said_name(printer)} gerade nicht: Der Drucker ist offline, oder sein Fernzugriff "
                "ist aus. "
                "Bitte versuch es später noch einmal.")

    def control_nothing(self, printer: dict[str, Any]) -> str:
        return f"{said_name(printer)} druckt gerade nichts, es gibt also nichts zu steuern."

    def control_already_paused(self, printer: dict[str, Any]) -> str:
        return f"{said_name(printer)} ist schon pausiert."

    def control_not_paused(self, printer: dict[str, Any]) -> str:
        return f"{said_name(printer)} ist nicht pausiert: Der Druck läuft."

    def control_refused(self, printer: dict[str, Any]) -> str:
        return f"{said_name(printer)} hat den Befehl gerade nicht angenommen. Bitte sieh am Drucker nach."

    def control_failed(self) -> str:
        return "Herald konnte den Befehl gerade nicht senden. Bitte versuch es später noch einmal."

    def link_account(self) -> str:
        return ("Um von deinen Druckern zu hören, verknüpfe dein Herald-Konto: "
                "In der Alexa-App findest du dafür eine Karte.")


def for_locale(locale: str | None) -> English:
    locale = locale or "en-US"
    if locale.lower().startswith("de"):
        return German(locale)
    if locale == "en-GB":
        return English("en-GB")
    return English("en-US")

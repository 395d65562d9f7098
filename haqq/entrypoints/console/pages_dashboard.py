"""Console pages: the dashboard (``GET /dashboard``), its figures drawn as server-side SVG charts
with the numbers in a table beneath each; ``HX-Request`` (the page's own refresh every 30 s)
gets the figures alone.

The charts' geometry is computed here (:class:`Chart`: bars, labels, ticks, a legend) and the
templates only draw it: no JavaScript library, no build step.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from markupsafe import Markup

from haqq.domain.access import Principal
from haqq.entrypoints.console.common import Who
from haqq.entrypoints.console.render import STRINGS, language_of, render, strings
from haqq.entrypoints.web.context import WebContext
from haqq.office.dashboard import Dashboard, DashboardUnavailable, dashboard

PALETTE = ("#0b6e4f", "#2f6fb3", "#c47f00", "#8e44ad", "#c0392b", "#16a085", "#7f8c8d", "#d35400", "#34495e", "#27ae60")
STATUS_COLOURS = {
    "accepted": "#0b6e4f", "rejected": "#a4262c", "sent": "#2f6fb3", "queued": "#6c8ebf", "scheduled": "#9fb7d6",
    "held": "#c47f00", "cancelled": "#7f8c8d",
}
CONSENT_COLOURS = {"yes": "#0b6e4f", "no": "#a4262c", "waiting": "#c47f00", "lapsed": "#7f8c8d"}

strings({
    "dash.title": {"az": "Göstəricilər", "ru": "Показатели", "en": "Dashboard"},
    "dash.as_of": {"az": "{time} vəziyyətinə (məlumat {until} tarixinədək)",
                   "ru": "на {time} (данные по {until})", "en": "as of {time} (data until {until})"},
    "dash.cases": {"az": "İşlər", "ru": "Дела", "en": "Cases"},
    "dash.program": {"az": "Proqram", "ru": "Программа", "en": "Program"},
    "dash.total": {"az": "Cəmi", "ru": "Всего", "en": "Total"},
    "dash.day": {"az": "Gün", "ru": "День", "en": "Day"},
    "dash.none": {"az": "Hələ məlumat yoxdur", "ru": "Данных пока нет", "en": "No data yet"},
    "dash.assignments": {"az": "Gün üzrə təyin edilmiş müavinətlər", "ru": "Назначенные пособия по дням",
                         "en": "Benefits assigned per day"},
    "dash.assignments.caption": {
        "az": "{start} – {end}: hər gün təyin edilmiş müavinətlər, proqramlar üzrə ({n} cəmi)",
        "ru": "{start} – {end}: пособия, назначенные за день, по программам (всего {n})",
        "en": "{start} – {end}: benefits assigned each day, by program ({n} in all)"},
    "dash.latency": {"az": "Hadisədən pula qədər vaxt", "ru": "Время от события до выплаты",
                     "en": "Time from the event to the money"},
    "dash.latency.caption": {
        "az": "Həyat hadisəsindən bankın qəbul etdiyi ilk ödənişə qədər saat: median (tünd) və 95-ci faiz (açıq)",
        "ru": "Часы от жизненного события до первой принятой банком выплаты: медиана (тёмная) и 95-й процентиль (светлая)",
        "en": "Hours from the life event to the first payment the bank accepted: median (dark) and 95th percentile (light)"},
    "dash.median": {"az": "Median, saat", "ru": "Медиана, ч", "en": "Median, hours"},
    "dash.p95": {"az": "95-ci faiz, saat", "ru": "95-й процентиль, ч", "en": "95th percentile, hours"},
    "dash.waiting": {"az": "Gözləyən işlər", "ru": "Ожидающие дела", "en": "Cases waiting"},
    "dash.waiting.caption": {"az": "Hələ bitməmiş işlər, vəziyyət üzrə ({n} cəmi)",
                             "ru": "Незавершённые дела по состояниям (всего {n})",
                             "en": "Cases not yet finished, by state ({n} in all)"},
    "dash.state": {"az": "Vəziyyət", "ru": "Состояние", "en": "State"},
    "dash.reasons": {"az": "Baxılma səbəbləri", "ru": "Причины проверки", "en": "Why cases need review"},
    "dash.reason": {"az": "Səbəb", "ru": "Причина", "en": "Reason"},
    "dash.consent": {"az": "Razılıq cavabları", "ru": "Ответы на запрос согласия", "en": "Consent answers"},
    "dash.consent.caption": {"az": "Razılıq rejimli proqramlar: SMS-ə verilən cavablar",
                             "ru": "Программы с согласием: ответы на SMS",
                             "en": "Programs asking consent: the answers to the SMS"},
    "consent.yes": {"az": "Bəli", "ru": "Да", "en": "Yes"},
    "consent.no": {"az": "Xeyr", "ru": "Нет", "en": "No"},
    "consent.waiting": {"az": "Cavab gözlənilir", "ru": "Ждём ответа", "en": "Waiting"},
    "consent.lapsed": {"az": "Cavab verilmədi", "ru": "Без ответа", "en": "No answer (lapsed)"},
    "dash.choices": {"az": "Vətəndaşların seçimləri", "ru": "Решения граждан", "en": "Citizens' choices"},
    "dash.choice": {"az": "Seçim", "ru": "Решение", "en": "Choice"},
    "dash.channel": {"az": "Kanal", "ru": "Канал", "en": "Channel"},
    "choice.consent": {"az": "razılıq", "ru": "согласие", "en": "consent"},
    "choice.refuse": {"az": "imtina (razılıq)", "ru": "отказ (согласие)", "en": "refused consent"},
    "choice.decline": {"az": "imtina", "ru": "отказ", "en": "declined"},
    "choice.stop": {"az": "dayandırma", "ru": "прекращение", "en": "stopped"},
    "choice.claimed": {"az": "müraciət", "ru": "обращение", "en": "claimed"},
    "dash.payments": {"az": "Ödənişlər", "ru": "Выплаты", "en": "Payments"},
    "dash.payments.caption": {"az": "Ödənişlər proqram və vəziyyət üzrə: qəbul edilən, rədd edilən, yolda olan",
                              "ru": "Выплаты по программам и статусам: принятые, отклонённые, в пути",
                              "en": "Payments by program and status: accepted, rejected, on their way"},
    "dash.status": {"az": "Status", "ru": "Статус", "en": "Status"},
    "dash.count": {"az": "Say", "ru": "Кол-во", "en": "Count"},
    "dash.amount": {"az": "Məbləğ", "ru": "Сумма", "en": "Amount"},
    "pay.accepted": {"az": "qəbul edildi", "ru": "принята", "en": "accepted"},
    "pay.rejected": {"az": "rədd edildi", "ru": "отклонена", "en": "rejected"},
    "pay.sent": {"az": "göndərildi", "ru": "отправлена", "en": "sent"},
    "pay.queued": {"az": "növbədə", "ru": "в очереди", "en": "queued"},
    "pay.scheduled": {"az": "planlaşdırılıb", "ru": "запланирована", "en": "scheduled"},
    "pay.held": {"az": "saxlanılıb", "ru": "задержана", "en": "held"},
    "pay.cancelled": {"az": "ləğv edildi", "ru": "отменена", "en": "cancelled"},
    "dash.proactive": {"az": "Müraciətsiz xidmət payı", "ru": "Доля услуг без заявления",
                       "en": "Share of services with no application"},
    "dash.proactive.caption": {
        "az": "Təyin edilmiş {n} müavinətdən: reyestr hadisəsi ilə başlayıb, müraciət və işçi olmadan (avtomatik və ya SMS razılığı ilə)",
        "ru": "Из {n} назначенных пособий: начаты событием реестра, без заявления и без сотрудника (автоматически или с согласием по SMS)",
        "en": "Of {n} benefits assigned: started by a registry event, with no application and no caseworker (automatic, or with consent by SMS)"},
    "dash.no_step": {"az": "heç kimin addımı olmadan: {share}", "ru": "без чьих-либо действий: {share}",
                     "en": "with no step by anyone: {share}"},
    "dash.how": {"az": "Necə təyin edilib", "ru": "Как назначено", "en": "How it was assigned"},
    "how.automatic": {"az": "avtomatik", "ru": "автоматически", "en": "automatically"},
    "how.consent": {"az": "SMS razılığı ilə", "ru": "с согласием по SMS", "en": "with consent by SMS"},
    "how.claim": {"az": "vətəndaşın müraciəti ilə", "ru": "по обращению гражданина", "en": "after the citizen's claim"},
    "how.review": {"az": "işçinin baxışından sonra", "ru": "после проверки сотрудником", "en": "after a caseworker's review"},
    "how.appeal": {"az": "şikayətdən sonra", "ru": "после обжалования", "en": "after an appeal"},
    "dash.unavailable": {"az": "Göstəricilər hazırda hesablana bilmir", "ru": "Показатели сейчас недоступны",
                         "en": "The figures cannot be computed now"},
    "state.detected": {"az": "aşkarlandı", "ru": "выявлено", "en": "detected"},
    "state.gathering": {"az": "məlumat toplanır", "ru": "сбор данных", "en": "gathering data"},
    "state.verifying": {"az": "yoxlanılır", "ru": "проверка", "en": "verifying"},
    "state.decided": {"az": "qərar verildi", "ru": "решено", "en": "decided"},
    "state.awaiting_consent": {"az": "razılıq gözlənilir", "ru": "ждёт согласия", "en": "awaiting consent"},
    "state.assigned": {"az": "təyin edildi", "ru": "назначено", "en": "assigned"},
    "state.account_requested": {"az": "hesab istənilib", "ru": "запрошен счёт", "en": "account requested"},
    "state.account_ready": {"az": "hesab hazırdır", "ru": "счёт готов", "en": "account ready"},
    "state.payment_scheduled": {"az": "ödəniş planlaşdırılıb", "ru": "выплата запланирована", "en": "payment scheduled"},
    "state.notified": {"az": "xəbər verildi", "ru": "уведомлён", "en": "notified"},
    "state.needs_review": {"az": "işçi baxmalıdır", "ru": "нужна проверка", "en": "needs review"},
})


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    colour: str
    title: str


@dataclass(frozen=True)
class Label:
    x: float
    y: float
    text: str
    anchor: str = "start"


@dataclass
class Chart:
    """What a template draws: an SVG of ``width`` x ``height`` with bars, labels and a legend."""

    width: int
    height: int
    bars: list[Bar] = field(default_factory=list)
    labels: list[Label] = field(default_factory=list)
    lines: list[tuple[float, float, float, float]] = field(default_factory=list)
    legend: list[tuple[str, str]] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.bars


def _nice_max(value: float) -> float:
    """A round axis maximum at or above ``value``."""
    if value <= 0:
        return 1.0
    step = float(10 ** len(str(int(value)))) / 10
    for mult in (1.0, 2.0, 2.5, 5.0, 10.0):
        if step * mult >= value:
            return step * mult
    return step * 10


def _fmt(value: float) -> str:
    return f"{value:,.0f}" if value >= 10 or value == int(value) else f"{value:,.1f}"


def assignments_chart(
    days: list[date], counts: dict[date, dict[str, int]], programs: list[str], names: dict[str, str]
) -> Chart:
    """Stacked vertical bars: one per day, a segment per program."""
    width, height, left, bottom, top = 900, 260, 44, 28, 10
    chart = Chart(width, height)
    if not days:
        return chart
    colours = {p: PALETTE[i % len(PALETTE)] for i, p in enumerate(programs)}
    peak = _nice_max(max((sum(counts.get(d, {}).values()) for d in days), default=0))
    plot_h = height - bottom - top
    step = (width - left - 8) / len(days)
    for i in range(5):
        value = peak * i / 4
        y = top + plot_h - plot_h * i / 4
        chart.lines.append((left, y, width - 8, y))
        chart.labels.append(Label(left - 4, y + 4, _fmt(value), "end"))
    for i, day in enumerate(days):
        x = left + i * step
        y = top + plot_h
        for p in programs:
            n = counts.get(day, {}).get(p, 0)
            if not n:
                continue
            h = plot_h * n / peak
            y -= h
            chart.bars.append(Bar(round(x + 0.5, 1), round(y, 1), round(max(step - 1, 1), 1), round(h, 1), colours[p],
                                  f"{day.isoformat()} {names.get(p, p)}: {n:,}"))
        if i % 15 == 0 or i == len(days) - 1:
            chart.labels.append(Label(x + step / 2, height - 10, day.strftime("%m-%d"), "middle"))
    chart.legend = [(colours[p], names.get(p, p)) for p in programs]
    return chart


def hbar_chart(rows: list[tuple[str, list[tuple[str, float, str]]]], *, overlay: bool = False) -> Chart:
    """Horizontal bars: one row per label; its segments stacked (or overlaid, the first widest
    drawn first) as ``(series title, value, colour)``."""
    label_w, row_h, width, top = 210, 26, 900, 6
    height = top + row_h * max(len(rows), 1) + 22
    chart = Chart(width, height)
    totals = [max((v for _, v, _ in segs), default=0) if overlay else sum(v for _, v, _ in segs) for _, segs in rows]
    peak = _nice_max(max(totals, default=0))
    plot_w = width - label_w - 60
    for i in range(5):
        x = label_w + plot_w * i / 4
        chart.lines.append((x, top, x, top + row_h * len(rows)))
        chart.labels.append(Label(x, height - 6, _fmt(peak * i / 4), "middle"))
    for r, (label, segs) in enumerate(rows):
        y = top + r * row_h + 4
        chart.labels.append(Label(label_w - 6, y + 13, label[:34], "end"))
        x = float(label_w)
        ordered = sorted(segs, key=lambda s: -s[1]) if overlay else segs
        for i, (title, value, colour) in enumerate(ordered):
            if value <= 0:
                continue
            w = plot_w * value / peak
            inset = 4 * i if overlay else 0
            chart.bars.append(Bar(round(x, 1), y + inset, round(w, 1), row_h - 8 - 2 * inset, colour,
                                  f"{label}: {title} {_fmt(value)}"))
            if not overlay:
                x += w
        chart.labels.append(Label(label_w + plot_w * (totals[r] / peak) + 6, y + 13, _fmt(totals[r])))
    return chart


def view_model(figures: Dashboard, names: dict[str, str], t_labels: dict[str, str]) -> dict[str, object]:
    """Everything the dashboard template shows: the charts and the tables' rows."""
    programs = sorted({d.program_id for d in figures.assignments})
    counts: dict[date, dict[str, int]] = defaultdict(dict)
    for d in figures.assignments:
        counts[d.day][d.program_id] = d.cases
    days: list[date] = []
    if figures.window_start and figures.window_end:
        days = [figures.window_start + timedelta(days=i) for i in range((figures.window_end - figures.window_start).days + 1)]
    latency = hbar_chart(
        [(names.get(x.program_id, x.program_id),
          [(t_labels["p95"], x.p95_hours, "#9fd3bf"), (t_labels["median"], x.median_hours, "#0b6e4f")])
         for x in figures.latency],
        overlay=True,
    )
    latency.legend = [("#0b6e4f", t_labels["median"]), ("#9fd3bf", t_labels["p95"])]
    waiting = hbar_chart([(t_labels.get(f"state.{w.state}", w.state),
                           [(w.state, float(w.cases), "#c47f00" if w.state == "needs_review" else "#2f6fb3")])
                          for w in figures.waiting])
    consent = hbar_chart([
        (names.get(c.program_id, c.program_id),
         [(t_labels[f"consent.{k}"], float(getattr(c, k)), CONSENT_COLOURS[k]) for k in ("yes", "no", "waiting", "lapsed")])
        for c in figures.consent
    ])
    consent.legend = [(CONSENT_COLOURS[k], t_labels[f"consent.{k}"]) for k in ("yes", "no", "waiting", "lapsed")]
    by_program: dict[str, dict[str, int]] = defaultdict(dict)
    for p in figures.payments:
        by_program[p.program_id][p.status] = p.payments
    statuses = [s for s in STATUS_COLOURS if any(s in v for v in by_program.values())]
    pay = hbar_chart([
        (names.get(pid, pid), [(t_labels[f"pay.{s}"], float(v.get(s, 0)), STATUS_COLOURS[s]) for s in statuses])
        for pid, v in sorted(by_program.items())
    ])
    pay.legend = [(STATUS_COLOURS[s], t_labels[f"pay.{s}"]) for s in statuses]
    return {
        "charts": {
            "assignments": assignments_chart(days, counts, programs, names),
            "latency": latency, "waiting": waiting, "consent": consent, "payments": pay,
        },
        "assign_rows": [(names.get(p, p), figures.assignments_by_program.get(p, 0)) for p in programs],
        "pay_rows": [(names.get(p.program_id, p.program_id), p.status, p.payments, p.amount) for p in figures.payments],
    }


def routes(ctx: WebContext) -> APIRouter:
    router = APIRouter()
    # The figures drawn, per language, for the figures held: drawing them (charts and tables) costs
    # tens of milliseconds, so it is done once per computation, not per request.
    drawn: dict[str, tuple[Dashboard, Markup]] = {}

    def figures_html(request: Request, who: Principal, figures: Dashboard, lang: str) -> Markup:
        held = drawn.get(lang)
        if held is not None and held[0] is figures:
            return held[1]
        names = {pid: getattr(p.names, lang) for pid, p in ctx.catalogue.programs.items()}
        labels = {"median": _t("dash.median", lang), "p95": _t("dash.p95", lang), **{k: _t(k, lang) for k in _LABEL_KEYS}}
        page = render(request, "dashboard_figures.html", who, {
            "figures": figures, "problem": None, "names": names, **view_model(figures, names, labels),
        })
        html = Markup(bytes(page.body).decode("utf-8"))
        drawn[lang] = (figures, html)
        return html

    @router.get("/dashboard", include_in_schema=False)
    def dashboard_page(request: Request, who: Who) -> HTMLResponse:
        fragment = bool(request.headers.get("hx-request"))
        try:
            figures = dashboard(who, ctx.engine, ctx.catalogue)
        except DashboardUnavailable as exc:
            problem = {"figures_html": None, "problem": str(exc)}
            return render(request, "dashboard_figures.html" if fragment else "dashboard.html", who,
                          {"figures": None, **problem}, status=503)
        html = figures_html(request, who, figures, language_of(request))
        if fragment:
            return HTMLResponse(html)
        return render(request, "dashboard.html", who, {"figures_html": html, "problem": None})

    return router


_LABEL_KEYS = (
    [f"consent.{k}" for k in ("yes", "no", "waiting", "lapsed")]
    + [f"pay.{s}" for s in STATUS_COLOURS]
    + [f"state.{s}" for s in (
        "detected", "gathering", "verifying", "decided", "awaiting_consent", "assigned", "account_requested",
        "account_ready", "payment_scheduled", "notified", "needs_review",
    )]
)


def _t(key: str, lang: str) -> str:
    return STRINGS[key][lang]

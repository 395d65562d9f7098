"""Console pages: the review queue, a case under review, appeals, and the citizen's appeal form.

Every POST answers with a 303 back to the page it came from; a form filled wrongly answers with
a 422 page naming the field (:class:`FormError`). The office layer (:mod:`haqq.office.review`,
:mod:`haqq.office.appeals`) does the work and logs every look and step.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from haqq.domain.access import Action, Role, allowed
from haqq.domain.money import MINOR_PER_MAJOR
from haqq.domain.review import (
    APPEALABLE,
    MAX_REASON,
    AppealStatus,
    InvalidReview,
    ReviewOutcome,
    Stage,
)
from haqq.entrypoints.console.common import FormError, Who
from haqq.entrypoints.console.render import STRINGS, language_of, render, strings
from haqq.entrypoints.web.context import WebContext
from haqq.office import appeals as appeal_office
from haqq.office import review as office

#: The largest amount a form may grant (a sanity bound, in qəpik: one million manat).
MAX_AMOUNT = 100_000_000
PAGE = 50

strings({
    "review.title": {"az": "Baxılacaq işlər", "ru": "Очередь проверки", "en": "Review queue"},
    "review.empty": {"az": "Növbədə iş yoxdur", "ru": "В очереди нет дел", "en": "No case is waiting"},
    "review.all": {"az": "Hamısı", "ru": "Все", "en": "All"},
    "review.case": {"az": "İş", "ru": "Дело", "en": "Case"},
    "review.program": {"az": "Proqram", "ru": "Программа", "en": "Program"},
    "review.beneficiary": {"az": "Alan şəxs", "ru": "Получатель", "en": "Beneficiary"},
    "review.subject": {"az": "Hadisənin şəxsi", "ru": "Лицо события", "en": "Subject"},
    "review.reason": {"az": "Səbəb", "ru": "Причина", "en": "Reason"},
    "review.waiting": {"az": "Gözləyir (başlanğıc)", "ru": "Ждёт с", "en": "Waiting since"},
    "review.stage": {"az": "Mərhələ", "ru": "Этап", "en": "Stage"},
    "review.assignee": {"az": "İcraçı", "ru": "Исполнитель", "en": "Taken by"},
    "review.state": {"az": "İşin vəziyyəti", "ru": "Состояние дела", "en": "Case state"},
    "review.occurred": {"az": "Hadisə tarixi", "ru": "Дата события", "en": "Event date"},
    "review.next": {"az": "Növbəti səhifə", "ru": "Следующая страница", "en": "Next page"},
    "review.why": {"az": "Niyə insan baxmalıdır", "ru": "Почему нужна проверка человеком",
                   "en": "Why a person must look"},
    "review.decision": {"az": "Qərar və onun izahı", "ru": "Решение и его обоснование",
                        "en": "Decision and its explanation"},
    "review.nodecision": {"az": "Hələ qərar yoxdur", "ru": "Решения пока нет", "en": "No decision yet"},
    "review.outcome": {"az": "Nəticə", "ru": "Итог", "en": "Outcome"},
    "review.amount": {"az": "Məbləğ (AZN)", "ru": "Сумма (AZN)", "en": "Amount (AZN)"},
    "review.branch": {"az": "Qayda", "ru": "Правило", "en": "Rule"},
    "review.facts": {"az": "Faktlar", "ru": "Факты", "en": "Facts"},
    "review.fact": {"az": "Fakt", "ru": "Факт", "en": "Fact"},
    "review.value": {"az": "Dəyər", "ru": "Значение", "en": "Value"},
    "review.source": {"az": "Mənbə", "ru": "Источник", "en": "Source"},
    "review.trail": {"az": "İşin tarixçəsi", "ru": "История дела", "en": "The case's trail"},
    "review.at": {"az": "Vaxt", "ru": "Время", "en": "When"},
    "review.from": {"az": "Haradan", "ru": "Откуда", "en": "From"},
    "review.to": {"az": "Haraya", "ru": "Куда", "en": "To"},
    "review.cause": {"az": "Səbəb", "ru": "Причина", "en": "Cause"},
    "review.actions": {"az": "İnsanların addımları", "ru": "Действия людей", "en": "Steps people took"},
    "review.action": {"az": "Addım", "ru": "Действие", "en": "Step"},
    "review.by": {"az": "Kim", "ru": "Кто", "en": "By"},
    "review.take": {"az": "Götür", "ru": "Взять", "en": "Take"},
    "review.release": {"az": "Növbəyə qaytar", "ru": "Вернуть в очередь", "en": "Release"},
    "review.decide": {"az": "Qərar ver", "ru": "Решить", "en": "Decide"},
    "review.decide.title": {"az": "Qərar", "ru": "Решение", "en": "Decision"},
    "review.amount.hint": {"az": "yalnız təyin üçün, məs. 250.00", "ru": "только для назначения, напр. 250.00",
                           "en": "a grant only, e.g. 250.00"},
    "review.approve": {"az": "Təsdiqlə", "ru": "Утвердить", "en": "Approve"},
    "review.reject": {"az": "Rədd et", "ru": "Отклонить", "en": "Reject"},
    "review.proposal": {"az": "Təklif olunan qərar", "ru": "Предложенное решение", "en": "Proposed decision"},
    "review.proposer": {"az": "Təklif edən", "ru": "Предложил", "en": "Proposed by"},
    "review.own": {"az": "Bu qərarı siz təklif etmisiniz: onu başqa nəzarətçi təsdiqləməlidir",
                   "ru": "Это решение предложили вы: утвердить его должен другой руководитель",
                   "en": "You proposed this decision: another supervisor must approve it"},
    "review.notunder": {"az": "İş artıq baxılmır", "ru": "Дело больше не на проверке",
                        "en": "The case is no longer under review"},
    "review.takenby": {"az": "Götürüb: {who}", "ru": "Взял(а): {who}", "en": "Taken by {who}"},
    "review.entitlement": {"az": "Hüquq", "ru": "Право", "en": "Entitlement"},
    "stage.open": {"az": "açıq", "ru": "открыто", "en": "open"},
    "stage.taken": {"az": "götürülüb", "ru": "взято", "en": "taken"},
    "stage.awaiting_approval": {"az": "təsdiq gözləyir (awaiting approval)",
                                "ru": "ждёт утверждения (awaiting approval)", "en": "awaiting approval"},
    "stage.done": {"az": "bitib", "ru": "завершено", "en": "done"},
    "outcome.grant": {"az": "Təyin et", "ru": "Назначить", "en": "Grant"},
    "outcome.deny": {"az": "İmtina et", "ru": "Отказать", "en": "Deny"},
    "outcome.rerun": {"az": "Yenidən yoxla", "ru": "Проверить заново", "en": "Re-run"},
    "appeals.title": {"az": "Şikayətlər", "ru": "Обжалования", "en": "Appeals"},
    "appeals.empty": {"az": "Şikayət yoxdur", "ru": "Обжалований нет", "en": "No appeal"},
    "appeals.id": {"az": "№", "ru": "№", "en": "No."},
    "appeals.opened": {"az": "Verilib", "ru": "Подано", "en": "Opened"},
    "appeals.status": {"az": "Vəziyyət", "ru": "Статус", "en": "Status"},
    "appeals.reason": {"az": "Vətəndaşın səbəbi", "ru": "Довод гражданина", "en": "The citizen's reason"},
    "appeals.channel": {"az": "Kanal", "ru": "Канал", "en": "Channel"},
    "appeals.decided": {"az": "Qərar verən", "ru": "Решил(а)", "en": "Decided by"},
    "appeals.decision_reason": {"az": "Qərarın səbəbi", "ru": "Обоснование решения", "en": "Reason for the decision"},
    "appeals.appealed": {"az": "Şikayət edilən qərar", "ru": "Обжалуемое решение", "en": "The decision appealed"},
    "appeals.decide": {"az": "Qərar ver", "ru": "Решить", "en": "Decide"},
    "appeals.decision": {"az": "Qərar", "ru": "Решение", "en": "Decision"},
    "appeal.upheld": {"az": "Qərar qüvvədə qalır", "ru": "Решение остаётся в силе", "en": "Upheld"},
    "appeal.rerun": {"az": "İş yenidən yoxlanılsın", "ru": "Проверить дело заново", "en": "Re-run the case"},
    "appeal.open": {"az": "baxılır", "ru": "на рассмотрении", "en": "open"},
    "me.appeal.title": {"az": "Qərardan şikayət", "ru": "Обжаловать решение", "en": "Appeal a decision"},
    "me.appeal.intro": {"az": "Qərarın niyə səhv olduğunu yazın. Mütəxəssis baxacaq və sizə cavab veriləcək.",
                        "ru": "Напишите, почему решение неверно. Специалист рассмотрит обращение и ответит вам.",
                        "en": "Write why the decision is wrong. An official will look at it and answer you."},
    "me.appeal.reason": {"az": "Səbəb", "ru": "Причина", "en": "Reason"},
    "me.appeal.submit": {"az": "Şikayət et", "ru": "Обжаловать", "en": "Appeal"},
    "me.appeal.cannot": {"az": "Bu işin qərarından indi şikayət etmək olmaz",
                         "ru": "Решение по этому делу сейчас нельзя обжаловать",
                         "en": "This case's decision cannot be appealed now"},
    "me.appeal.pending": {"az": "Bu iş üzrə şikayətiniz artıq baxılır", "ru": "Ваше обжалование уже рассматривается",
                          "en": "Your appeal of this case is already being looked at"},
    "form.reason": {"az": "reason: səbəbi yazın", "ru": "reason: напишите причину",
                    "en": "reason: write the reason"},
    "form.reason.long": {"az": "reason: çox uzundur", "ru": "reason: слишком длинно", "en": "reason: too long"},
    "form.amount.nan": {"az": "amount: manatla rəqəm yazın, məs. 250.00",
                        "ru": "amount: укажите сумму в манатах, напр. 250.00",
                        "en": "amount: not a number of manat; write it like 250.00"},
    "form.amount.positive": {"az": "amount: məbləğ sıfırdan böyük olmalıdır",
                             "ru": "amount: сумма должна быть больше нуля",
                             "en": "amount: must be more than zero"},
    "form.amount.cents": {"az": "amount: ən çox iki onluq rəqəm (qəpik)",
                          "ru": "amount: не больше двух знаков после точки (гяпики)",
                          "en": "amount: at most two decimals (qəpik)"},
    "form.amount.large": {"az": "amount: məbləğ çox böyükdür", "ru": "amount: сумма слишком велика",
                          "en": "amount: too large"},
    "form.amount.missing": {"az": "amount: təyin üçün məbləğ lazımdır", "ru": "amount: для назначения нужна сумма",
                            "en": "amount: a grant needs an amount"},
    "form.outcome": {"az": "outcome: təyin, imtina və ya yenidən yoxlama seçin",
                     "ru": "outcome: выберите назначить, отказать или проверить заново",
                     "en": "outcome: choose grant, deny or rerun"},
    "form.decision": {"az": "decision: upheld və ya rerun seçin", "ru": "decision: выберите upheld или rerun",
                      "en": "decision: choose upheld or rerun"},
})


def _t(request: Request, key: str) -> str:
    return STRINGS[key][language_of(request)]


def reason_of(request: Request, reason: str) -> str:
    text = reason.strip()
    if not text:
        raise FormError(_t(request, "form.reason"))
    if len(text) > MAX_REASON:
        raise FormError(_t(request, "form.reason.long"))
    return text


def amount_of(request: Request, text: str) -> int:
    """``'250'``, ``'250.5'``, ``'250,50'``, ``'250.00 AZN'`` -> qəpik; else a :class:`FormError`."""
    cleaned = text.strip().upper().removesuffix("AZN").strip().replace(" ", "").replace(",", ".")
    if not cleaned:
        raise FormError(_t(request, "form.amount.missing"))
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        raise FormError(_t(request, "form.amount.nan")) from None
    if not value.is_finite():
        raise FormError(_t(request, "form.amount.nan"))
    if value <= 0:
        raise FormError(_t(request, "form.amount.positive"))
    minor = value * MINOR_PER_MAJOR
    if minor != minor.to_integral_value():
        raise FormError(_t(request, "form.amount.cents"))
    if minor > MAX_AMOUNT:
        raise FormError(_t(request, "form.amount.large"))
    return int(minor)


@contextmanager
def as_form_errors() -> Iterator[None]:
    """A decision the domain refuses as written is a form error naming the field."""
    try:
        yield
    except InvalidReview as exc:
        raise FormError(str(exc)) from None


def _trace_rows(decision: dict[str, Any] | None) -> dict[str, Any]:
    trace = (decision or {}).get("trace") or {}
    return {
        "reasons": [r for r in trace.get("reasons") or [] if isinstance(r, dict)],
        "facts": [f for f in trace.get("facts") or [] if isinstance(f, dict)],
        "reviews": [r for r in trace.get("reviews") or [] if isinstance(r, dict)],
    }


def routes(ctx: WebContext) -> APIRouter:
    router = APIRouter()

    def back(case_id: str) -> Response:
        return RedirectResponse(f"/review/{case_id}", status_code=303)

    @router.get("/review", include_in_schema=False)
    def queue_page(
        request: Request, who: Who,
        stage: Annotated[str, Query(max_length=20)] = "",
        program: Annotated[str, Query(max_length=60)] = "",
        offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    ) -> HTMLResponse:
        chosen = stage if stage in {s.value for s in Stage} else None
        with ctx.engine.begin() as conn:
            items = office.queue(conn, who, chosen, program or None, PAGE, offset, catalogue=ctx.catalogue,
                                 at=ctx.now())
        more = len(items) > PAGE
        return render(request, "review.html", who, {
            "items": items[:PAGE], "stage": chosen or "", "program": program, "stages": [s.value for s in Stage
                                                                                         if s is not Stage.DONE],
            "next_offset": offset + PAGE if more else None,
        })

    @router.get("/review/{case_id}", include_in_schema=False)
    def case_page(request: Request, who: Who, case_id: str) -> HTMLResponse:
        with ctx.engine.begin() as conn:
            case = office.case_review(conn, who, case_id[:24], ctx.now(), catalogue=ctx.catalogue)
        supervisor = who.role is Role.SUPERVISOR
        deciding = case.stage in (Stage.OPEN, Stage.TAKEN) and (
            case.stage is Stage.OPEN or supervisor or case.assignee in (None, who.subject))
        return render(request, "review_case.html", who, {
            "case": case, "trace": _trace_rows(dict(case.decision) if case.decision else None),
            "can_take": case.stage is Stage.OPEN,
            "can_release": case.stage is Stage.TAKEN and (supervisor or case.assignee == who.subject),
            "can_decide": deciding,
            "can_approve": case.stage is Stage.AWAITING_APPROVAL and allowed(who, Action.APPROVE_REVIEW),
            "own_proposal": case.proposed_by == who.subject,
            "outcomes": [o.value for o in ReviewOutcome],
        })

    @router.post("/review/{case_id}/take", include_in_schema=False)
    def take(who: Who, case_id: str) -> Response:
        with ctx.engine.begin() as conn:
            office.take(conn, who, case_id[:24], ctx.now())
        return back(case_id)

    @router.post("/review/{case_id}/release", include_in_schema=False)
    def release(who: Who, case_id: str) -> Response:
        with ctx.engine.begin() as conn:
            office.release(conn, who, case_id[:24], ctx.now())
        return back(case_id)

    @router.post("/review/{case_id}/decide", include_in_schema=False)
    def decide(
        request: Request, who: Who, case_id: str,
        outcome: Annotated[str, Form(max_length=20)] = "",
        amount: Annotated[str, Form(max_length=40)] = "",
        reason: Annotated[str, Form(max_length=MAX_REASON * 2)] = "",
    ) -> Response:
        if outcome not in {o.value for o in ReviewOutcome}:
            raise FormError(_t(request, "form.outcome"))
        qepik = amount_of(request, amount) if outcome == ReviewOutcome.GRANT.value else None
        why = reason_of(request, reason)
        with as_form_errors(), ctx.engine.begin() as conn:
            office.decide(conn, who, case_id[:24], outcome, qepik, why, ctx.now(), catalogue=ctx.catalogue,
                          threshold=ctx.review_threshold)
        return back(case_id)

    @router.post("/review/{case_id}/approve", include_in_schema=False)
    def approve(
        request: Request, who: Who, case_id: str, reason: Annotated[str, Form(max_length=MAX_REASON * 2)] = "",
    ) -> Response:
        why = reason_of(request, reason)
        with as_form_errors(), ctx.engine.begin() as conn:
            office.approve(conn, who, case_id[:24], why, ctx.now(), catalogue=ctx.catalogue)
        return back(case_id)

    @router.post("/review/{case_id}/reject", include_in_schema=False)
    def reject(
        request: Request, who: Who, case_id: str, reason: Annotated[str, Form(max_length=MAX_REASON * 2)] = "",
    ) -> Response:
        why = reason_of(request, reason)
        with as_form_errors(), ctx.engine.begin() as conn:
            office.reject(conn, who, case_id[:24], why, ctx.now())
        return back(case_id)

    # --- appeals -------------------------------------------------------------------------------

    @router.get("/appeals", include_in_schema=False)
    def appeals_page(
        request: Request, who: Who,
        status: Annotated[str, Query(max_length=20)] = "",
        offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    ) -> HTMLResponse:
        chosen = status if status in {s.value for s in AppealStatus} else None
        with ctx.engine.connect() as conn:
            found = appeal_office.appeals(conn, who, chosen, PAGE, offset)
        return render(request, "appeals.html", who, {
            "items": found[:PAGE], "status": chosen or "", "statuses": [s.value for s in AppealStatus],
            "next_offset": offset + PAGE if len(found) > PAGE else None,
        })

    @router.get("/appeals/{appeal_id}", include_in_schema=False)
    def appeal_page(request: Request, who: Who, appeal_id: int) -> HTMLResponse:
        with ctx.engine.begin() as conn:
            found = appeal_office.appeal(conn, who, appeal_id, at=ctx.now())
        return render(request, "appeal.html", who, {
            "appeal": found,
            "can_decide": found.status is AppealStatus.OPEN and allowed(who, Action.DECIDE_APPEAL),
        })

    @router.post("/appeals/{appeal_id}/decide", include_in_schema=False)
    def decide_appeal(
        request: Request, who: Who, appeal_id: int,
        decision: Annotated[str, Form(max_length=20)] = "",
        reason: Annotated[str, Form(max_length=MAX_REASON * 2)] = "",
    ) -> Response:
        if decision not in {"upheld", "rerun"}:
            raise FormError(_t(request, "form.decision"))
        why = reason_of(request, reason)
        with as_form_errors(), ctx.engine.begin() as conn:
            appeal_office.decide_appeal(conn, who, appeal_id, decision, why, ctx.now())
        return RedirectResponse(f"/appeals/{appeal_id}", status_code=303)

    # --- the citizen's appeal --------------------------------------------------------------------

    @router.get("/me/cases/{case_id}/appeal", include_in_schema=False)
    def appeal_form(request: Request, who: Who, case_id: str) -> HTMLResponse:
        with ctx.engine.connect() as conn:
            case = appeal_office.appealable(conn, who, case_id[:24])
        return render(request, "me_appeal.html", who, {
            "case": case, "open": case.state in APPEALABLE and not case.pending,
        })

    @router.post("/me/cases/{case_id}/appeal", include_in_schema=False)
    def appeal_post(
        request: Request, who: Who, case_id: str, reason: Annotated[str, Form(max_length=MAX_REASON * 2)] = "",
    ) -> Response:
        with ctx.engine.connect() as conn:
            appeal_office.appealable(conn, who, case_id[:24])  # 403 on another person's case, first
        why = reason_of(request, reason)
        channel = "web" if who.role is Role.CITIZEN else "office"
        with as_form_errors(), ctx.engine.begin() as conn:
            appeal_office.open_appeal(conn, who, case_id[:24], why, ctx.now(), channel)
        return RedirectResponse("/me" if who.role is Role.CITIZEN else f"/review/{case_id}", status_code=303)

    return router

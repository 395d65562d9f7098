"""Console pages: citizen (see :func:`routes`): "my benefits" (what was decided and why, the
payments to come, a one-step decline or stop, the way to appeal) and "who looked at my data"."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from haqq.domain.access import AccessDenied, Principal, Role
from haqq.entrypoints.console.common import Who
from haqq.entrypoints.console.render import language_of, render, strings
from haqq.entrypoints.web.context import WebContext
from haqq.office import people

CaseIdPath = Annotated[str, Path(min_length=1, max_length=24)]
OffsetQuery = Annotated[int, Query(ge=0, le=1_000_000)]

#: Entries of "who looked at my data" on one page.
ACCESS_PAGE = 100

strings({
    "me.title": {"az": "Mənim müavinətlərim", "ru": "Мои пособия", "en": "My benefits"},
    "me.none": {"az": "Sizin üçün hələ heç bir iş yoxdur", "ru": "Для вас пока нет ни одного дела",
                "en": "There are no cases for you yet"},
    "me.decided": {"az": "Nə qərara alındı və niyə", "ru": "Что решено и почему", "en": "What was decided and why"},
    "me.details": {"az": "Ətraflı: istifadə olunan məlumatlar və hədlər", "ru": "Подробно: какие данные и пороги использованы",
                   "en": "In detail: the data and thresholds used"},
    "me.amount": {"az": "Məbləğ", "ru": "Сумма", "en": "Amount"},
    "me.monthly": {"az": "ayda", "ru": "в месяц", "en": "a month"},
    "me.status": {"az": "Vəziyyət", "ru": "Статус", "en": "Status"},
    "me.next": {"az": "Növbəti ödənişlər", "ru": "Следующие выплаты", "en": "Next payments"},
    "me.no_next": {"az": "Gözlənilən ödəniş yoxdur", "ru": "Ожидаемых выплат нет", "en": "No payments to come"},
    "me.stop": {"az": "Dayandır", "ru": "Прекратить", "en": "Stop"},
    "me.decline": {"az": "İmtina et", "ru": "Отказаться", "en": "Decline"},
    "me.stop_hint": {"az": "Bu müavinətdən imtina edə və ya onu dayandıra bilərsiniz; ödənilməmiş ödənişlər ləğv olunacaq.",
                     "ru": "Вы можете отказаться от этого пособия или прекратить его; невыплаченные выплаты будут отменены.",
                     "en": "You can decline or stop this benefit; payments not yet made will be cancelled."},
    "me.appeal": {"az": "Qərardan şikayət et", "ru": "Обжаловать решение", "en": "Appeal the decision"},
    "me.appeal_open": {"az": "Şikayətiniz baxılır", "ru": "Ваше обжалование рассматривается", "en": "Your appeal is being considered"},
    "me.access_title": {"az": "Məlumatlarıma kim baxıb", "ru": "Кто смотрел мои данные", "en": "Who looked at my data"},
    "me.access_intro": {"az": "Hər qurumun və əməkdaşın məlumatlarınıza nə vaxt və niyə baxdığı",
                        "ru": "Когда и зачем ведомства и сотрудники обращались к вашим данным",
                        "en": "When and why each institution and official read your data"},
    "me.access_none": {"az": "Hələ heç kim baxmayıb", "ru": "Пока никто не смотрел", "en": "Nobody has looked yet"},
    "me.older": {"az": "Əvvəlkilər", "ru": "Раньше", "en": "Older"},
    "me.newer": {"az": "Sonrakılar", "ru": "Позже", "en": "Newer"},
    "status.active": {"az": "ödənilir", "ru": "выплачивается", "en": "being paid"},
    "status.pending": {"az": "hesab açılır", "ru": "открывается счёт", "en": "account being opened"},
    "status.ended": {"az": "dayandırılıb", "ru": "прекращено", "en": "ended"},
    "status.declined": {"az": "imtina edilib", "ru": "отказ", "en": "declined"},
    "status.closed": {"az": "bağlanıb", "ru": "закрыто", "en": "closed"},
    "status.denied": {"az": "təyin edilmədi", "ru": "не назначено", "en": "not granted"},
    "status.lapsed": {"az": "cavab verilmədi", "ru": "нет ответа", "en": "no answer given"},
    "status.needs_review": {"az": "əməkdaş baxır", "ru": "на проверке у специалиста", "en": "a caseworker is looking at it"},
    "status.awaiting_consent": {"az": "razılığınız gözlənilir", "ru": "ждём вашего согласия", "en": "waiting for your consent"},
    "status.other": {"az": "icra olunur", "ru": "в работе", "en": "in progress"},
})

#: Statuses with a plain word of their own (others read "in progress").
WORDS = ("active", "pending", "ended", "declined", "closed", "denied", "lapsed", "needs_review", "awaiting_consent")


def _citizen(who: Principal) -> str:
    if who.role is not Role.CITIZEN or not who.fin:
        raise AccessDenied("these pages are a citizen's own; officials use the search")
    return who.fin


def routes(ctx: WebContext) -> APIRouter:
    router = APIRouter()

    @router.get("/me", include_in_schema=False)
    def mine(request: Request, who: Who) -> Response:
        if who.role is not Role.CITIZEN:
            return RedirectResponse("/search", status_code=303)
        _citizen(who)
        with ctx.engine.begin() as conn:
            benefits = people.my_benefits(conn, who, ctx.now(), language_of(request), catalogue=ctx.catalogue)
        return render(request, "me.html", who, {"benefits": benefits, "words": WORDS})

    @router.post("/me/cases/{case_id}/decline", include_in_schema=False)
    def decline(who: Who, case_id: CaseIdPath) -> Response:
        _citizen(who)
        with ctx.engine.begin() as conn:
            people.decline(conn, who, case_id, ctx.now(), ctx.quiet, ctx.messages, channel="console")
        return RedirectResponse(f"/me#case-{case_id}", status_code=303)

    @router.get("/me/access", include_in_schema=False)
    def access(request: Request, who: Who, offset: OffsetQuery = 0) -> HTMLResponse:
        fin = _citizen(who)
        with ctx.engine.begin() as conn:
            found = people.access_log(conn, who, fin, ACCESS_PAGE, offset)
        return render(request, "me_access.html", who, {"log": found, "offset": offset, "page": ACCESS_PAGE})

    return router

"""Console pages: person (see :func:`routes`): the search and a person's whole picture, for
caseworkers, supervisors and auditors. Every page about a person is logged in that person's
data-access log; a citizen opening their own page is taken to "my benefits"."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from haqq.domain.access import Action, Role, require
from haqq.entrypoints.console.common import Who
from haqq.entrypoints.console.render import language_of, render, strings
from haqq.entrypoints.web.context import WebContext
from haqq.office import people

FinPath = Annotated[str, Path(pattern=r"^[0-9A-Z]{7}$")]
CaseIdPath = Annotated[str, Path(min_length=1, max_length=24)]
SearchText = Annotated[str, Query(max_length=100)]
OffsetQuery = Annotated[int, Query(ge=0, le=10_000)]
NoteField = Annotated[str, Form(max_length=500)]

#: Persons on one page of search results.
PAGE = 25

strings({
    "search.title": {"az": "Şəxs axtarışı", "ru": "Поиск человека", "en": "Find a person"},
    "search.label": {"az": "FİN, telefon nömrəsi və ya adın əvvəli", "ru": "ФИН, номер телефона или начало имени",
                     "en": "FIN, phone number or the start of a name"},
    "search.submit": {"az": "Axtar", "ru": "Найти", "en": "Search"},
    "search.none": {"az": "Heç kim tapılmadı", "ru": "Никого не найдено", "en": "Nobody found"},
    "search.more": {"az": "Daha çox", "ru": "Ещё", "en": "More"},
    "search.fin_only": {"az": "Reyestr qoşulmayıb: yalnız FİN üzrə axtarış", "ru": "Реестр не подключён: поиск только по ФИН",
                        "en": "No registry is connected: search by FIN only"},
    "search.logged": {"az": "Hər axtarış tapılan şəxslərin məlumat jurnalına yazılır",
                      "ru": "Каждый поиск записывается в журнал доступа найденных людей",
                      "en": "Each search is written to the data-access log of the persons found"},
    "col.fin": {"az": "FİN", "ru": "ФИН", "en": "FIN"},
    "col.name": {"az": "Ad", "ru": "Имя", "en": "Name"},
    "col.birth": {"az": "Doğum tarixi", "ru": "Дата рождения", "en": "Born"},
    "col.phone": {"az": "Telefon", "ru": "Телефон", "en": "Phone"},
    "col.cases": {"az": "İşlər", "ru": "Дела", "en": "Cases"},
    "col.when": {"az": "Vaxt", "ru": "Когда", "en": "When"},
    "col.what": {"az": "Nə", "ru": "Что", "en": "What"},
    "col.source": {"az": "Mənbə", "ru": "Источник", "en": "Source"},
    "col.status": {"az": "Vəziyyət", "ru": "Статус", "en": "Status"},
    "col.program": {"az": "Proqram", "ru": "Программа", "en": "Program"},
    "col.amount": {"az": "Məbləğ", "ru": "Сумма", "en": "Amount"},
    "col.period": {"az": "Dövr", "ru": "Период", "en": "Period"},
    "col.from": {"az": "Başlanğıc", "ru": "С", "en": "From"},
    "col.to": {"az": "Son", "ru": "По", "en": "To"},
    "col.case": {"az": "İş", "ru": "Дело", "en": "Case"},
    "col.fact": {"az": "Fakt", "ru": "Факт", "en": "Fact"},
    "col.value": {"az": "Dəyər", "ru": "Значение", "en": "Value"},
    "col.institution": {"az": "Qurum", "ru": "Ведомство", "en": "Institution"},
    "col.message": {"az": "Mesaj", "ru": "Сообщение", "en": "Message"},
    "col.who": {"az": "Kim", "ru": "Кто", "en": "Who"},
    "col.why": {"az": "Niyə", "ru": "Зачем", "en": "Why"},
    "col.relation": {"az": "Qohumluq", "ru": "Родство", "en": "Relation"},
    "col.text": {"az": "Mətn", "ru": "Текст", "en": "Text"},
    "col.channel": {"az": "Kanal", "ru": "Канал", "en": "Channel"},
    "col.reason": {"az": "Səbəb", "ru": "Причина", "en": "Reason"},
    "person.title": {"az": "Şəxs", "ru": "Человек", "en": "Person"},
    "person.identity": {"az": "Şəxsiyyət", "ru": "Личные данные", "en": "Identity"},
    "person.sex": {"az": "Cins", "ru": "Пол", "en": "Sex"},
    "person.address": {"az": "Ünvan", "ru": "Адрес", "en": "Address"},
    "person.language": {"az": "Dil", "ru": "Язык", "en": "Language"},
    "person.death": {"az": "Vəfat tarixi", "ru": "Дата смерти", "en": "Died"},
    "person.read": {"az": "Mənbə və oxunma vaxtı", "ru": "Источник и время чтения", "en": "Source and time read"},
    "person.family": {"az": "Ailə", "ru": "Семья", "en": "Family"},
    "person.registry": {"az": "haqq-ın istifadə etdiyi reyestr məlumatları", "ru": "Данные реестров, которые использовал haqq",
                        "en": "Registry data haqq used"},
    "person.timeline": {"az": "Həyat hadisələri", "ru": "Жизненные события", "en": "Life events"},
    "person.cases": {"az": "İşlər və qərarlar", "ru": "Дела и решения", "en": "Cases and decisions"},
    "person.entitlements": {"az": "Hüquqlar", "ru": "Права на выплаты", "en": "Entitlements"},
    "person.payments": {"az": "Ödənişlər", "ru": "Выплаты", "en": "Payments"},
    "person.recoveries": {"az": "Geri tələblər", "ru": "Требования о возврате", "en": "Recovery claims"},
    "person.sms": {"az": "SMS", "ru": "SMS", "en": "SMS"},
    "person.choices": {"az": "Vətəndaşın seçimləri", "ru": "Выбор гражданина", "en": "The citizen's choices"},
    "person.appeals": {"az": "Şikayətlər", "ru": "Обжалования", "en": "Appeals"},
    "person.access": {"az": "Məlumatlara kim baxıb", "ru": "Кто смотрел данные", "en": "Who looked at the data"},
    "person.access_more": {"az": "Yalnız son {n} qeyd göstərilir", "ru": "Показаны только последние {n} записей",
                           "en": "Only the latest {n} entries are shown"},
    "person.account": {"az": "Bank hesabı", "ru": "Банковский счёт", "en": "Bank account"},
    "person.none": {"az": "Yoxdur", "ru": "Нет", "en": "None"},
    "person.beneficiary": {"az": "Alan", "ru": "Получатель", "en": "Beneficiary"},
    "person.subject": {"az": "Hadisənin şəxsi", "ru": "Лицо события", "en": "Subject"},
    "person.decision": {"az": "Qərar", "ru": "Решение", "en": "Decision"},
    "person.basis": {"az": "Hüquqi əsas", "ru": "Правовое основание", "en": "Legal basis"},
    "person.no_decision": {"az": "Hələ qərar yoxdur", "ru": "Решения пока нет", "en": "No decision yet"},
    "person.review": {"az": "Baxışa keç", "ru": "К проверке", "en": "Review it"},
    "person.steps": {"az": "İşin gedişi", "ru": "Ход дела", "en": "The case's steps"},
    "person.on_behalf": {"az": "Şəxsin adından imtina et / dayandır", "ru": "Отказаться / прекратить от имени человека",
                         "en": "Decline / stop on the person's behalf"},
    "person.note": {"az": "Səbəb (şəxsin sözləri ilə)", "ru": "Причина (со слов человека)",
                    "en": "Why (in the person's words)"},
    "person.logged": {"az": "Bu baxış şəxsin məlumat jurnalına yazıldı", "ru": "Этот просмотр записан в журнал доступа человека",
                      "en": "This look was written to the person's data-access log"},
})


def routes(ctx: WebContext) -> APIRouter:
    router = APIRouter()

    @router.get("/search", include_in_schema=False)
    def search(request: Request, who: Who, q: SearchText = "", offset: OffsetQuery = 0) -> HTMLResponse:
        found = people.SearchResult(hits=[], more=False)
        if q.strip():
            with ctx.engine.begin() as conn:
                found = people.search(conn, ctx.directory, who, q, PAGE, offset, at=ctx.now())
        else:
            require(who, Action.SEARCH_PERSONS)
        values = {"q": q, "found": found, "offset": offset, "page": PAGE, "fin_only": ctx.directory is None}
        if request.headers.get("hx-request"):
            return render(request, "_search_results.html", who, values)
        return render(request, "search.html", who, values)

    @router.get("/persons/{fin}", include_in_schema=False)
    def person(request: Request, who: Who, fin: FinPath) -> Response:
        if who.role is Role.CITIZEN and who.fin == fin:
            return RedirectResponse("/me", status_code=303)
        try:
            found = people.view_person(ctx.engine, ctx.directory, who, fin, ctx.now(), language_of(request),
                                       catalogue=ctx.catalogue, what="person page")
        except people.UnknownPerson as exc:
            raise StarletteHTTPException(404, str(exc)) from None
        can_decline = who.role in (Role.CASEWORKER, Role.SUPERVISOR)
        return render(request, "person.html", who, {"p": found, "can_decline": can_decline})

    @router.post("/persons/{fin}/cases/{case_id}/decline", include_in_schema=False)
    def decline_for(who: Who, fin: FinPath, case_id: CaseIdPath, note: NoteField = "") -> Response:
        with ctx.engine.begin() as conn:
            people.decline(conn, who, case_id, ctx.now(), ctx.quiet, ctx.messages, channel="console",
                           note=note.strip() or None)
        return RedirectResponse(f"/persons/{fin}#entitlements", status_code=303)

    return router

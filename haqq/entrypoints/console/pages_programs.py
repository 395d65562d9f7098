"""Console pages: the program catalogue (``GET /programs``) and one program with its parameters'
full history and the values that apply on a date (``GET /programs/{program_id}?as_of=``)."""

from __future__ import annotations

from datetime import date
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse

from haqq.entrypoints.console.common import Who
from haqq.entrypoints.console.render import render, strings
from haqq.entrypoints.web.context import WebContext
from haqq.office.programs import UnknownProgram, catalogue_view, program_detail

BAKU = ZoneInfo("Asia/Baku")

strings({
    "prog.title": {"az": "Proqramlar", "ru": "Программы", "en": "Programs"},
    "prog.version": {"az": "Kataloqun versiyası", "ru": "Версия каталога", "en": "Catalogue version"},
    "prog.name": {"az": "Ad", "ru": "Название", "en": "Name"},
    "prog.mode": {"az": "Rejim", "ru": "Режим", "en": "Mode"},
    "prog.triggers": {"az": "Hansı hadisə ilə başlayır", "ru": "Какие события запускают", "en": "Started by"},
    "prog.beneficiary": {"az": "Kimə ödənilir", "ru": "Кому выплачивается", "en": "Paid to"},
    "prog.schedule": {"az": "Ödəniş qaydası", "ru": "Порядок выплаты", "en": "Schedule"},
    "prog.legal": {"az": "Hüquqi əsas", "ru": "Правовое основание", "en": "Legal basis"},
    "prog.ends_on": {"az": "Nə ilə bitir", "ru": "Чем прекращается", "en": "Ended by"},
    "prog.services": {"az": "Sorğulanan xidmətlər", "ru": "Запрашиваемые сервисы", "en": "Services asked"},
    "prog.stops": {"az": "Dayandırdığı proqramlar", "ru": "Прекращаемые программы", "en": "Programs it stops"},
    "prog.illustrative": {"az": "nümunəvi məbləğlər", "ru": "условные суммы", "en": "illustrative amounts"},
    "prog.parameters": {"az": "Parametrlər", "ru": "Параметры", "en": "Parameters"},
    "prog.parameter": {"az": "Parametr", "ru": "Параметр", "en": "Parameter"},
    "prog.value": {"az": "Dəyər", "ru": "Значение", "en": "Value"},
    "prog.from": {"az": "Qüvvədədir", "ru": "Действует с", "en": "In force from"},
    "prog.until": {"az": "Qədər", "ru": "По", "en": "Until"},
    "prog.reference": {"az": "Hüquqi akt", "ru": "Правовой акт", "en": "Legal act"},
    "prog.applies": {"az": "{day} tarixində tətbiq olunur", "ru": "применяется на {day}", "en": "applies on {day}"},
    "prog.as_of": {"az": "Tarixə görə", "ru": "На дату", "en": "As of"},
    "prog.show": {"az": "Göstər", "ru": "Показать", "en": "Show"},
    "prog.none_yet": {"az": "bu tarixdə hələ yoxdur", "ru": "на эту дату ещё нет", "en": "none yet on that date"},
    "prog.no_parameters": {"az": "Parametr yoxdur", "ru": "Параметров нет", "en": "No parameters"},
    "prog.history": {"az": "Tarixçə", "ru": "История", "en": "History"},
    "prog.now": {"az": "indi", "ru": "сейчас", "en": "now"},
    "mode.automatic": {"az": "avtomatik", "ru": "автоматически", "en": "automatic"},
    "mode.consent": {"az": "razılıqla", "ru": "с согласием", "en": "with consent"},
    "mode.notify": {"az": "xəbərdarlıq", "ru": "уведомление", "en": "notice"},
    "mode.stop": {"az": "dayandırma", "ru": "прекращение", "en": "stop"},
    "sched.lump_sum": {"az": "birdəfəlik", "ru": "единовременно", "en": "once"},
    "sched.monthly": {"az": "aylıq", "ru": "ежемесячно", "en": "monthly"},
    "sched.none": {"az": "ödəniş yoxdur", "ru": "без выплат", "en": "no payment"},
    "sched.until_age": {"az": "{n} yaşına qədər", "ru": "до {n} лет", "en": "until age {n}"},
    "sched.months": {"az": "{n} aya qədər", "ru": "до {n} мес.", "en": "for up to {n} months"},
})

ProgramId = Annotated[str, Path(min_length=1, max_length=60, pattern=r"^[a-z0-9_]+$")]
AsOf = Annotated[date | None, Query()]


def routes(ctx: WebContext) -> APIRouter:
    router = APIRouter()

    @router.get("/programs", include_in_schema=False)
    def programs_page(request: Request, who: Who) -> HTMLResponse:
        return render(request, "programs.html", who, {"catalogue": catalogue_view(who, ctx.catalogue)})

    @router.get("/programs/{program_id}", include_in_schema=False)
    def program_page(request: Request, who: Who, program_id: ProgramId, as_of: AsOf = None) -> HTMLResponse:
        day = as_of or ctx.now().astimezone(BAKU).date()
        try:
            detail = program_detail(who, ctx.catalogue, program_id, day)
        except UnknownProgram as exc:
            return render(request, "error.html", who, {"message": str(exc), "status": 404}, status=404)
        return render(request, "program.html", who, {"program": detail, "catalogue_version": ctx.catalogue.version})

    return router

"""The caseworkers' console and the citizen's view: server-rendered pages (Jinja2) with a few
live parts (``static/haqq.js``, htmx-style attributes, no build step), in az, ru and en.

Officials sign in and land on the search; a citizen lands on "my benefits". Every page about a
person that an official opens is logged in that person's data-access log.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

import structlog
from fastapi import FastAPI, Form, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from haqq.adapters.auth.passwords import sign_in
from haqq.domain.access import AccessDenied, NotSignedIn, Principal, Role
from haqq.domain.errors import HaqqError
from haqq.entrypoints.console import (
    pages_citizen,
    pages_dashboard,
    pages_person,
    pages_programs,
    pages_review,
)
from haqq.entrypoints.console.common import FormError
from haqq.entrypoints.console.render import HERE, render, strings
from haqq.entrypoints.web.auth import SESSION_COOKIE, principal_of
from haqq.entrypoints.web.context import WebContext

log = structlog.get_logger()

strings({
    "app.title": {"az": "haqq: bir pəncərə", "ru": "haqq: единое окно", "en": "haqq: one-stop shop"},
    "nav.search": {"az": "Axtarış", "ru": "Поиск", "en": "Search"},
    "nav.review": {"az": "Baxılacaq işlər", "ru": "Очередь проверки", "en": "Review queue"},
    "nav.appeals": {"az": "Şikayətlər", "ru": "Обжалования", "en": "Appeals"},
    "nav.dashboard": {"az": "Göstəricilər", "ru": "Показатели", "en": "Dashboard"},
    "nav.programs": {"az": "Proqramlar", "ru": "Программы", "en": "Programs"},
    "nav.mine": {"az": "Mənim müavinətlərim", "ru": "Мои пособия", "en": "My benefits"},
    "nav.access": {"az": "Məlumatlarıma kim baxıb", "ru": "Кто смотрел мои данные", "en": "Who looked at my data"},
    "nav.signout": {"az": "Çıxış", "ru": "Выйти", "en": "Sign out"},
    "login.title": {"az": "Daxil olun", "ru": "Вход", "en": "Sign in"},
    "login.username": {"az": "İstifadəçi adı", "ru": "Имя пользователя", "en": "Username"},
    "login.password": {"az": "Şifrə", "ru": "Пароль", "en": "Password"},
    "login.submit": {"az": "Daxil ol", "ru": "Войти", "en": "Sign in"},
    "login.wrong": {"az": "İstifadəçi adı və ya şifrə səhvdir", "ru": "Неверное имя пользователя или пароль",
                    "en": "Wrong username or password"},
    "error.title": {"az": "Alınmadı", "ru": "Не получилось", "en": "That did not work"},
    "error.forbidden": {"az": "Bu səhifəyə baxmaq icazəniz yoxdur", "ru": "У вас нет доступа к этой странице",
                        "en": "You may not open this page"},
    "error.notfound": {"az": "Belə səhifə yoxdur", "ru": "Такой страницы нет", "en": "There is no such page"},
    "error.back": {"az": "Geri", "ru": "Назад", "en": "Back"},
    "error.internal": {"az": "Xəta baş verdi; qeydə alındı", "ru": "Произошла ошибка; она записана",
                       "en": "Something went wrong; it has been logged"},
})


def home_of(principal: Principal) -> str:
    return "/me" if principal.role is Role.CITIZEN else "/search"


def make_console(ctx: WebContext) -> FastAPI:
    console = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    console.state.ctx = ctx
    console.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    def error_page(request: Request, message: str, status: int) -> HTMLResponse:
        try:
            principal: Principal | None = principal_of(request, ctx)
        except HaqqError:
            principal = None
        return render(request, "error.html", principal, {"message": message, "status": status}, status=status)

    @console.exception_handler(NotSignedIn)
    async def to_sign_in(request: Request, _: NotSignedIn) -> Response:
        target = "/login?next=" + quote(request.url.path + (f"?{request.url.query}" if request.url.query else ""))
        if request.headers.get("hx-request"):
            return Response(status_code=401, headers={"HX-Redirect": target})
        return RedirectResponse(target, status_code=303)

    @console.exception_handler(AccessDenied)
    async def forbidden(request: Request, exc: AccessDenied) -> HTMLResponse:
        return error_page(request, str(exc), 403)

    @console.exception_handler(FormError)
    async def form_error(request: Request, exc: FormError) -> HTMLResponse:
        return error_page(request, exc.message, 422)

    @console.exception_handler(RequestValidationError)
    async def malformed(request: Request, exc: RequestValidationError) -> HTMLResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path", "form"))
        return error_page(request, f"{where}: {first.get('msg', 'invalid')}" if where else "invalid form", 422)

    @console.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> HTMLResponse:
        return error_page(request, str(exc.detail), exc.status_code)

    @console.exception_handler(HaqqError)
    async def refused(request: Request, exc: HaqqError) -> HTMLResponse:
        return error_page(request, str(exc), 409)

    @console.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> HTMLResponse:
        log.error("console.unexpected", path=request.url.path, error=repr(exc))
        return error_page(request, "", 500)

    @console.get("/", include_in_schema=False)
    def home(request: Request) -> Response:
        try:
            principal = principal_of(request, ctx)
        except NotSignedIn:
            return RedirectResponse("/login", status_code=303)
        return RedirectResponse(home_of(principal), status_code=303)

    @console.get("/login", include_in_schema=False)
    def login_page(request: Request, next: str = "") -> HTMLResponse:
        return render(request, "login.html", None, {"next": next, "failed": False})

    @console.post("/login", include_in_schema=False)
    def login(
        request: Request,
        username: Annotated[str, Form(max_length=60)] = "",
        password: Annotated[str, Form(max_length=200)] = "",
        next: Annotated[str, Form(max_length=500)] = "",
    ) -> Response:
        try:
            with ctx.engine.begin() as conn:
                principal = sign_in(conn, username, password)
        except NotSignedIn:
            return render(request, "login.html", None, {"next": next, "failed": True}, status=401)
        # Only a path on this site (never //elsewhere) is followed after signing in.
        target = next if next.startswith("/") and not next.startswith("//") else home_of(principal)
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(
            SESSION_COOKIE, ctx.keys.issue(principal, now=ctx.now()), httponly=True, samesite="strict",
            max_age=int(ctx.keys.lifetime.total_seconds()), secure=request.url.scheme == "https",
        )
        return response

    @console.post("/logout", include_in_schema=False)
    def logout() -> Response:
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE)
        return response

    for module in (pages_person, pages_review, pages_dashboard, pages_programs, pages_citizen):
        console.include_router(module.routes(ctx))

    @console.get("/{path:path}", include_in_schema=False)
    def missing(request: Request, path: str) -> HTMLResponse:
        return error_page(request, f"/{path}", 404)

    return console

"""Herald's Content-Security-Policy for its own pages, with the few widenings a page may need."""

from __future__ import annotations

_PAGES = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:{img}; "
          "connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'{form}; "
          "frame-ancestors 'none'")


def page_policy(img: str = "", form: str = "") -> str:
    """The policy of Herald's pages; ``img``/``form``: one more source for img-src/form-action.

    form-action also governs where a submitted form's redirects may lead (Chromium blocks a 303 to
    an origin it does not list), so a form whose answer sends the browser elsewhere needs that place
    here: the consent page's ``returnUrl``, the printer page's relayed OctoPrint.
    """
    return _PAGES.format(img=f" {img}" if img else "", form=f" {form}" if form else "")

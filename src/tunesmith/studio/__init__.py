"""The studio: ``tunesmith serve`` — compose, listen, regenerate bars and download in the browser.

``app.create_app(models)`` builds the FastAPI app; ``engine`` is the one module that calls the
generation engine; ``render`` engraves and exports; ``static/`` is the page (no CDN, no network).
"""

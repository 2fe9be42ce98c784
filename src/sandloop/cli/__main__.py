from sandloop.cli import app

app()

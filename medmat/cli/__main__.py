from medmat.cli import app

app()

from libs.cli import app

app(prog_name="signgate")

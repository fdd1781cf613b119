from libs.tools.cli import app

app(prog_name="signgate")

from hybtui.cli import main

main()

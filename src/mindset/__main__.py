from mindset.cli import main

main()

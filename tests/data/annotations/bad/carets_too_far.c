// error: caret(s) point above the first line
//~^^ LEAK definite size=4

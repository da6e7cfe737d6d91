" Tensor logic (.tl) filetype settings: `#` comments for gc/commentary, formatting of comment lines.
if exists('b:did_ftplugin')
  finish
endif
let b:did_ftplugin = 1

setlocal commentstring=#\ %s
setlocal comments=:#
setlocal formatoptions-=t formatoptions+=croql
setlocal suffixesadd=.tl

let b:undo_ftplugin = 'setlocal commentstring< comments< formatoptions< suffixesadd<'

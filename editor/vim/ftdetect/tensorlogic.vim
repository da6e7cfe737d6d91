" Tensor logic (.tl) filetype detection.
" Vim's own filetype.vim maps *.tl to Teal with `setf teal`; this runs after it and uses `set`, not `setf`,
" so *.tl files get the tensorlogic filetype. Let g:tensorlogic_no_tl = 1 to leave *.tl to Teal (then use
" `:set filetype=tensorlogic` or a modeline `# vim: ft=tensorlogic`).
autocmd BufRead,BufNewFile *.tl if !get(g:, 'tensorlogic_no_tl', 0) | set filetype=tensorlogic | endif
